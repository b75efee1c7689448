/**
 * RunChecks: the settings of a run that cannot go together, or cannot run on this machine, found
 * before any work: bf16 with float64, a GPU asked for where none runs, softmax sinks on a device.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as ActivationFlags from "./ActivationFlags.js"
import { cudaRuntime } from "../tensor/device/CudaRuntime.js"
import type * as RunConfig from "./RunConfig.js"

/**
 * The first such problem of `c`, or undefined.
 * @category guards
 */
export const problemOf = (c: RunConfig.RunConfig): ConfigError.ConfigError | undefined => {
  if (c.precision === "bf16" && c.dtype === "float64")
    return ConfigError.make(
      "precision",
      "bf16",
      "cannot run with --dtype float64 (bf16 keeps fp32 master weights)",
      "drop --dtype float64, or use --precision fp32 for exact checks",
    )
  if (c.device === "cuda") {
    const cuda = cudaRuntime(0)
    if ("why" in cuda)
      return ConfigError.make(
        "device",
        "cuda",
        `has no GPU runtime here (${cuda.why})`,
        "run on a machine with a GPU and the CUDA addon built (pleat doctor says which is missing), or use --device cpu",
      )
  }
  if (c["softmax-type"] !== "vanilla" && c.device !== "cpu")
    return ConfigError.make(
      "softmax-type",
      c["softmax-type"],
      `runs on the host only (the ${c.device} attention kernels have no sinks yet)`,
      "use --device cpu, or --softmax-type vanilla",
    )
  const glu = ActivationFlags.gluFieldOf(c).glu
  if (glu !== undefined && c.device !== "cpu") {
    const [field, value] = c["quick-geglu"]
      ? ["quick-geglu", true]
      : c["activation-func-clamp-value"] !== undefined
        ? ["activation-func-clamp-value", glu.limit]
        : ["glu-linear-offset", glu.offset]
    return ConfigError.make(field as string, value, `runs on the host only (the ${c.device} kernels have SwiGLU alone)`, `use --device cpu, or drop --${field}`)
  }
  return undefined
}
