/**
 * MpiProbe: the `mpi` entry of `pleat doctor`: whether the MPI addon (pleat_mpi.node) is built
 * and loads, with the MPI library's version string or the reason it is missing; where mpirun
 * is and its version; and which launcher started this process (its rank and world size), as
 * the MPI backend will read it. Available means the addon loads. It only loads the library
 * (MPI_Get_library_version): it never initializes MPI.
 */
import * as MpiAddon from "../../native/MpiAddon.js"
import * as Launcher from "../../runtime/Launcher.js"
import * as Mpirun from "./Mpirun.js"

/**
 * The launcher of this process, or why its variables cannot be read.
 * @category models
 */
type LaunchReport =
  | { readonly launcher: string; readonly rank: number; readonly size: number; readonly localRank: number }
  | { readonly launcher: "unreadable"; readonly reason: string }

/**
 * The mpi entry.
 * @category models
 */
export interface MpiReport {
  readonly available: boolean
  /** MPI_Get_library_version's string, when the addon loads. */
  readonly library: string | null
  /** Why the addon is unusable (with the fix), when it is. */
  readonly reason?: string
  readonly mpirun: Mpirun.MpirunInfo
  readonly launch: LaunchReport
}

const launch = (env: NodeJS.ProcessEnv): LaunchReport => {
  try {
    const l = Launcher.fromEnvironment(env)
    return { launcher: l.launcher, rank: l.rank, size: l.size, localRank: l.localRank }
  } catch (error) {
    return { launcher: "unreadable", reason: error instanceof Error ? error.message : String(error) }
  }
}

/**
 * Probes MPI (never throws).
 * @category constructors
 */
export const probe = (env: NodeJS.ProcessEnv): MpiReport => {
  const status = MpiAddon.status()
  const mpirun = Mpirun.locate(undefined, env.PATH)
  const common = { mpirun, launch: launch(env) }
  return status.available ? { available: true, library: status.library, ...common } : { available: false, library: null, reason: status.reason, ...common }
}
