/**
 * RunChecks: the settings of a run that cannot go together, or cannot run on this machine, found
 * before any work: bf16 with float64, a GPU asked for where none runs.
 */
import * as ConfigError from "../errors/ConfigError.js"
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
  return undefined
}
