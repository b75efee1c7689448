/**
 * DoctorCommand: `pleat doctor [--json]`, the first command to run on a new machine or
 * cluster: what it offers pleat. One entry per engine (cpu, cuda, cublas, nccl, mpi; see
 * doctor/DoctorReport), each available or not with its details: the CPU's model, threads and
 * kernel ISA; MPI built or not, its library version, mpirun and the launcher of this process;
 * the CUDA addon, driver and devices; where cuBLAS and NCCL are. A missing engine is reported,
 * not an error: the status is 0 whenever the report is printed, 2 for a bad flag.
 */
import * as DoctorReport from "./doctor/DoctorReport.js"
import * as DoctorText from "./doctor/DoctorText.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"

/**
 * The flags of `pleat doctor`.
 * @category configuration
 */
const flags: Readonly<Record<string, Flags.FlagSpec>> = {
  json: { kind: "boolean", help: "print one JSON object (keys cpu, cuda, cublas, nccl, mpi) instead of text" },
  help: { kind: "boolean", help: "show this help" },
}

/**
 * The usage text of `pleat doctor`.
 * @category configuration
 */
const usage = `usage: pleat doctor [--json]

Says what this machine offers pleat, one entry per engine: cpu (model, threads, the ISA of the
native kernels), mpi (pleat_mpi.node built or not with its MPI library, mpirun, the launcher of
this process), cuda (pleat_cuda.node, the driver, devices), cublas and nccl (where the
libraries are). Each entry says whether it is available and, when not, why. It never starts
MPI or a GPU job. Exit status 0 whenever it reports (a missing engine is not an error).

${Flags.usage(flags)}
`

/**
 * Runs `pleat doctor` with its arguments (after the word `doctor`); returns the exit status.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number => {
  const f = Flags.parse(argv, flags)
  if (Flags.bool(f, "help")) {
    io.stdout(usage)
    return ExitCode.ok
  }
  const report = DoctorReport.make(process.env)
  io.stdout(Flags.bool(f, "json") ? `${JSON.stringify(report)}\n` : DoctorText.render(report))
  return ExitCode.ok
}
