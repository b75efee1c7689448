/**
 * Native: the `Kernels` set for float32 storage, backed by the CPU addon (src/native/Cpu.ts).
 *
 * `nativeKernels` is undefined when the addon is not built, fails to load, or is a stale build
 * without the tensor kernels; `nativeStatus` says which, so callers can log why they fell back to
 * the reference kernels. Kernels.ts uses them for float32 whenever they loaded (unless
 * PLEAT_KERNELS=reference).
 *
 * Only float32 storage is accepted (float64 is the reference kernels' exact path); a Float64Array
 * argument throws a TypeError naming the kernel and argument. The one exception is rmsnormRows'
 * `rstdOut`, which may be either (the rmsNorm op keeps rstd in float64).
 */
import * as Cpu from "../../native/Cpu.js"
import * as CpuOptional from "../../native/CpuOptional.js"
import type * as DType from "../DType.js"
import * as GroupedLoop from "./GroupedLoop.js"
import type { Kernels, MatmulArgs } from "./Kernels.js"
import { onOperands } from "./MatmulOperands.js"
import { reference } from "./Reference.js"

/**
 * Whether the native kernels loaded: the ISA and thread count they run with, or the reason they
 * did not.
 * @category models
 */
export type NativeStatus = { readonly available: true; readonly isa: Cpu.Isa; readonly threads: number } | { readonly available: false; readonly reason: string }

const f32 = (kernel: string, name: string, x: DType.Storage): Float32Array => {
  if (x instanceof Float32Array) return x
  throw new TypeError(`native ${kernel}: ${name} must be float32 storage (Float32Array), got ${x.constructor.name}`)
}

/** The native swiglu and RMSNorm backwards, or undefined with a build that predates them (the reference runs). */
const swigluBackward = CpuOptional.swigluBackwardKernel()
const rmsnormBackward = CpuOptional.rmsnormBackwardKernel()

const matmul = (p: MatmulArgs): void => Cpu.matmul(onOperands(p, f32("matmul", "a", p.a), f32("matmul", "b", p.b), f32("matmul", "out", p.out)))

/** The native grouped expert GEMM, or one native matmul per group with a build that predates it. */
const grouped = CpuOptional.groupedMatmulKernels()
const groupedRows: Kernels["groupedRows"] =
  grouped === undefined
    ? GroupedLoop.groupedRows(matmul)
    : (a, b, out, rows, k, n, transB) => grouped.rows(f32("groupedRows", "a", a), f32("groupedRows", "b", b), f32("groupedRows", "out", out), rows, k, n, transB)
const groupedWeights: Kernels["groupedWeights"] =
  grouped === undefined
    ? GroupedLoop.groupedWeights(matmul)
    : (a, c, out, rows, m, n, accumulate) =>
        grouped.weights(f32("groupedWeights", "a", a), f32("groupedWeights", "c", c), f32("groupedWeights", "out", out), rows, m, n, accumulate)

const kernels: Kernels = {
  name: "native",
  matmul,
  groupedRows,
  groupedWeights,
  gatherRows: (src, index, out, cols) => Cpu.gatherRows(f32("gatherRows", "src", src), index, f32("gatherRows", "out", out), cols),
  scatterAddRows: (src, index, out, cols) => Cpu.scatterAddRows(f32("scatterAddRows", "src", src), index, f32("scatterAddRows", "out", out), cols),
  softmaxRows: (x, out, rows, cols) => Cpu.softmaxRows(f32("softmaxRows", "x", x), f32("softmaxRows", "out", out), rows, cols),
  rmsnormRows: (x, weight, out, rstdOut, rows, cols, eps) =>
    Cpu.rmsnormRows(f32("rmsnormRows", "x", x), f32("rmsnormRows", "weight", weight), f32("rmsnormRows", "out", out), rstdOut, rows, cols, eps),
  swiglu: (gate, up, out) => Cpu.swiglu(f32("swiglu", "gate", gate), f32("swiglu", "up", up), f32("swiglu", "out", out)),
  rmsnormBackward: (x, weight, grad, rstd, rows, cols, dx, dw) => {
    const name = "rmsnormBackward"
    const args = [f32(name, "x", x), f32(name, "weight", weight), f32(name, "grad", grad), rstd, rows, cols] as const
    const out = dx === undefined ? undefined : f32(name, "dx", dx)
    if (rmsnormBackward === undefined) reference.rmsnormBackward(...args, out, dw)
    else rmsnormBackward(...args, out, dw)
  },
  swigluBackward: (gate, up, grad, dGate, dUp) => {
    const kernel = swigluBackward ?? reference.swigluBackward
    const name = "swigluBackward"
    kernel(
      f32(name, "gate", gate),
      f32(name, "up", up),
      f32(name, "grad", grad),
      dGate === undefined ? undefined : f32(name, "dGate", dGate),
      dUp === undefined ? undefined : f32(name, "dUp", dUp),
    )
  },
}

const load = (): { readonly kernels: Kernels | undefined; readonly status: NativeStatus } => {
  try {
    // Loads the addon and checks every tensor function exists (a stale build throws here).
    const isa = Cpu.activeIsa()
    return { kernels, status: { available: true, isa, threads: Cpu.threads() } }
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause)
    return { kernels: undefined, status: { available: false, reason } }
  }
}

const loaded = load()

/**
 * The native float32 kernels, or undefined when the addon is unavailable (see nativeStatus).
 * @category constructors
 */
export const nativeKernels: Kernels | undefined = loaded.kernels

/**
 * Why nativeKernels is or is not available, as of module load.
 * @category models
 */
export const nativeStatus: NativeStatus = loaded.status
