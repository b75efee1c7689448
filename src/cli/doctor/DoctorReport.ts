/**
 * DoctorReport: everything `pleat doctor` finds, one entry per engine pleat can use: `cpu`,
 * `cuda`, `cublas`, `nccl` and `mpi`, each with `available` (a boolean) and its details. It
 * is the JSON object `pleat doctor --json` prints; DoctorText renders it for people. Probing
 * never fails: an engine that is missing is an entry that says so and why.
 */
import * as CpuProbe from "./CpuProbe.js"
import * as CudaProbe from "./CudaProbe.js"
import * as GpuLibraries from "./GpuLibraries.js"
import * as LibrarySearch from "../../native/LibrarySearch.js"
import * as MpiProbe from "./MpiProbe.js"

/**
 * What this machine offers pleat.
 * @category models
 */
export interface DoctorReport {
  readonly cpu: CpuProbe.CpuReport
  readonly cuda: CudaProbe.CudaReport
  readonly cublas: GpuLibraries.LibraryReport
  readonly nccl: GpuLibraries.LibraryReport
  readonly mpi: MpiProbe.MpiReport
}

/**
 * Probes this machine as the process with environment `env` sees it.
 * @category constructors
 */
export const make = (env: NodeJS.ProcessEnv): DoctorReport => {
  const dirs = LibrarySearch.searchDirs(env)
  const cuda = CudaProbe.probe(dirs)
  return {
    cpu: CpuProbe.probe(),
    cuda,
    cublas: GpuLibraries.cublas(dirs, cuda.available),
    nccl: GpuLibraries.nccl(dirs, env, cuda.available),
    mpi: MpiProbe.probe(env),
  }
}
