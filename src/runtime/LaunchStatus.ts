/**
 * LaunchStatus: how the processes of a `pleat launch` job hand their status back to the launch.
 *
 * mpirun reports any process that exits with a status other than 0 in a banner of eight lines
 * ("Primary job terminated normally, but 1 process returned a non-zero exit code...") under the
 * line pleat already printed: a flag mistaken on `pleat launch -n 8 -- pleat train ...` gave one
 * line of pleat's and mpirun's banner. So `pleat launch` names a file in PLEAT_LAUNCH_STATUS (the
 * ranks inherit mpirun's environment); a process of the job that ends normally has rank 0 write
 * the command's status there and every process exit with 0, and the launch exits with the
 * status written. Whatever ends a process otherwise (a signal, MPI_Abort after an operation left
 * waiting, a failed write) leaves mpirun's own status and report, which the launch then keeps.
 * Without the variable (mpirun or srun run by hand) a process exits with the status itself.
 */
import { readFileSync, writeFileSync } from "node:fs"
import * as Launcher from "./Launcher.js"

/**
 * The variable that names the status file.
 * @category configuration
 */
export const variable = "PLEAT_LAUNCH_STATUS"

/**
 * The status this process of an MPI job exits with, having ended normally with `code`: `code`
 * without a status file; otherwise 0, once rank 0 has written `code` into it (`code` again when
 * the write fails, so the status still reaches mpirun).
 * @category constructors
 */
export const exitWith = (code: number, env: Readonly<Record<string, string | undefined>> = process.env): number => {
  const file = env[variable]
  if (file === undefined || file === "") return code
  if (Launcher.fromEnvironment(env).rank !== 0) return 0
  try {
    writeFileSync(file, `${code}\n`)
    return 0
  } catch {
    return code
  }
}

/**
 * The job's status from mpirun's and the status file's: the file's when mpirun ended with 0
 * and rank 0 wrote it, else mpirun's.
 * @category constructors
 */
export const read = (mpirunStatus: number, file: string): number => {
  if (mpirunStatus !== 0) return mpirunStatus
  try {
    const written = Number.parseInt(readFileSync(file, "utf8"), 10)
    return Number.isInteger(written) && written >= 0 && written <= 255 ? written : mpirunStatus
  } catch {
    return mpirunStatus
  }
}
