/**
 * CpuProbe: the `cpu` entry of `pleat doctor`. pleat always runs on the CPU (available is
 * always true); the entry says on what: the processor's model, the hardware threads this
 * process may use, and what the native CPU addon found: the instruction-set features, the
 * kernel ISA it dispatches to, its thread pool, and whether OpenBLAS (bench comparisons only)
 * loads. Without the addon's build, the entry says so and why.
 */
import { arch, availableParallelism } from "node:os"
import * as Cpu from "../../native/Cpu.js"
import * as CpuInfo from "./CpuInfo.js"

/**
 * What the native CPU kernels see, or why they are missing.
 * @category models
 */
type Kernels =
  | {
      readonly built: true
      readonly activeIsa: Cpu.Isa
      readonly features: Cpu.CpuFeatures
      readonly poolThreads: number
      readonly openblas: Cpu.OpenBlasStatus
    }
  | { readonly built: false; readonly reason: string }

/**
 * The cpu entry.
 * @category models
 */
export interface CpuReport {
  readonly available: true
  readonly model: string | null
  readonly arch: string
  /** Hardware threads this process may use (os.availableParallelism). */
  readonly threads: number
  /** Physical cores, when /proc/cpuinfo lists them. */
  readonly physicalCores: number | null
  readonly kernels: Kernels
}

const kernels = (): Kernels => {
  try {
    return { built: true, activeIsa: Cpu.activeIsa(), features: Cpu.cpuFeatures(), poolThreads: Cpu.threads(), openblas: Cpu.openblasStatus() }
  } catch (error) {
    return { built: false, reason: error instanceof Error ? error.message : String(error) }
  }
}

/**
 * Probes the CPU (never throws).
 * @category constructors
 */
export const probe = (): CpuReport => {
  const info = CpuInfo.read()
  return {
    available: true,
    model: info.model ?? null,
    arch: arch(),
    threads: availableParallelism(),
    physicalCores: info.physicalCores ?? null,
    kernels: kernels(),
  }
}
