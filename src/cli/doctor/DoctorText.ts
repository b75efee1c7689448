/**
 * DoctorText: the report of `pleat doctor` for people: one block per engine, its first line
 * `name  yes|no  the essential`, then indented details; missing pieces carry the reason and
 * the fix the probes found. `--json` prints the DoctorReport itself instead.
 */
import type * as CpuProbe from "./CpuProbe.js"
import type * as CudaProbe from "./CudaProbe.js"
import type { DoctorReport } from "./DoctorReport.js"
import type * as GpuLibraries from "./GpuLibraries.js"
import type * as MpiProbe from "./MpiProbe.js"

const block = (name: string, available: boolean, head: string, details: ReadonlyArray<string>): string =>
  [`${name.padEnd(8)} ${(available ? "yes" : "no").padEnd(4)} ${head}`, ...details.map((d) => `${" ".repeat(14)}${d}`)].join("\n")

/** A CUDA version number (13000) as people write it (13.0). */
const cudaVersion = (v: number): string => `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`

const cpu = (r: CpuProbe.CpuReport): string => {
  const cores = r.physicalCores === null ? "" : `, ${r.physicalCores} physical cores`
  const head = `${r.model ?? "unknown model"} (${r.arch}), ${r.threads} threads${cores}`
  const k = r.kernels
  if (!k.built) return block("cpu", true, head, [`native kernels: unavailable: ${k.reason}`])
  const features = (["avx2", "fma", "avx512f"] as const).filter((f) => k.features[f])
  return block("cpu", true, head, [
    `native kernels: ${k.activeIsa} (CPU features: ${features.length === 0 ? "none of avx2 fma avx512f" : features.join(" ")}), pool of ${k.poolThreads} threads`,
    `OpenBLAS (bench comparisons only): ${k.openblas.available ? "yes" : "no"}, ${k.openblas.detail}`,
  ])
}

const mpi = (r: MpiProbe.MpiReport): string => {
  const mpirun = r.mpirun.found ? `${r.mpirun.path} (${r.mpirun.version})` : `not found: ${r.mpirun.reason}`
  const l = r.launch
  const launch = "reason" in l ? `unreadable: ${l.reason}` : `${l.launcher} (rank ${l.rank} of ${l.size})`
  return block("mpi", r.available, r.library ?? r.reason ?? "", [`mpirun: ${mpirun}`, `launcher of this process: ${launch}`])
}

const cuda = (r: CudaProbe.CudaReport): string => {
  const head = r.available ? `${r.devices} device${r.devices === 1 ? "" : "s"}` : (r.reason ?? "")
  const versions = r.runtimeVersion === null ? "" : `, CUDA runtime ${cudaVersion(r.runtimeVersion)}, driver ${r.driverVersion ? cudaVersion(r.driverVersion) : "none"}`
  const driver = r.driver.length === 0 ? "libcuda.so.1: not found" : `libcuda.so.1: ${r.driver.join(", ")}`
  const gpus = r.gpus.map((g) => `gpu ${g.index}: ${g.name}, ${(g.memoryBytes / 2 ** 30).toFixed(1)} GiB, compute ${g.computeCapability}`)
  return block("cuda", r.available, head, [`addon pleat_cuda.node: ${r.addon}${versions}`, driver, ...gpus])
}

const library = (name: string, r: GpuLibraries.LibraryReport): string =>
  block(name, r.available, r.reason, [
    r.found.length === 0 ? `found: none in ${r.searched.length} folders (pleat doctor --json lists them)` : `found: ${r.found.join(", ")}`,
    ...(r.path === null
      ? []
      : [
          r.loadError !== null
            ? `${r.path} does not load: ${r.loadError}`
            : `${r.path}: version ${r.version ?? "unknown"}${r.missing.length === 0 ? ", every entry point pleat uses" : `, lacks ${r.missing.join(", ")}`}`,
        ]),
  ])

/**
 * The text report.
 * @category mapping
 */
export const render = (r: DoctorReport): string => {
  const next =
    r.mpi.available && r.mpi.mpirun.found
      ? "multi-process jobs on this machine: pleat launch -n N -- pleat <command> [flags]"
      : "multi-process jobs need the mpi entry above: apt-get install openmpi-bin libopenmpi-dev, then npm run build:native"
  return `pleat doctor: what this machine offers pleat

${[cpu(r.cpu), mpi(r.mpi), cuda(r.cuda), library("cublas", r.cublas), library("nccl", r.nccl)].join("\n")}

${next}
`
}
