/**
 * MpiProcess: a process of an MPI launch, from start to exit. `main` starts MPI, then rank 0
 * runs the command (its jobs reach the other processes through MpiJob) while every other rank
 * serves jobs; when the command ends, rank 0 sends its exit status to the others, and every
 * process ends MPI (MPI_Finalize, or MPI_Abort when an op of a failed job is still in flight,
 * since an MPI collective cannot be cancelled) and exits with that status. So a refused command (exit
 * 2) prints its one line on rank 0 and ends every process with 2.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as MpiSession from "../comm/mpi/MpiSession.js"
import { availableParallelism } from "node:os"
import * as Cpu from "../native/Cpu.js"
import * as MpiAddon from "../native/MpiAddon.js"
import * as Launcher from "./Launcher.js"
import * as MpiJob from "./MpiJob.js"

/**
 * Whether this process was started by an MPI launcher together with others (then `main`
 * must run it).
 * @category guards
 */
export const launched = (env: Readonly<Record<string, string | undefined>> = process.env): boolean => {
  const launch = Launcher.fromEnvironment(env)
  return launch.mpi && Launcher.isMultiProcess(launch)
}

/**
 * The number of processes of this launch (1 without a launcher).
 * @category getters
 */
export const worldSize = (): number => MpiSession.running()?.size ?? Launcher.fromEnvironment().size

/**
 * A ConfigError when a job of `world` ranks cannot run on this launch (one rank per process).
 * @category guards
 */
export const worldProblem = (field: string, world: number): ConfigError.ConfigError | undefined => {
  const size = worldSize()
  if (world === size) return undefined
  const launch = Launcher.fromEnvironment()
  const started = launch.launcher === "none" ? "this process runs alone (no launcher)" : `${launch.launcher} started ${size} processes`
  return ConfigError.make(
    field,
    world,
    `does not match the launch: the mpi backend runs one rank per process and ${started}`,
    `start ${world} processes (pleat launch -n ${world} -- ...) or pass --world ${size}`,
  )
}

/**
 * Runs this process of a launch: rank 0 runs `command` (its exit status; 1, its error printed
 * through `say`, when it throws), the others serve; resolves with the status every process
 * exits with. `say` also prints rank 0's line when MPI is missing.
 * @category constructors
 */
export const main = async (command: () => Promise<number>, say: (line: string) => void): Promise<number> => {
  const status = MpiAddon.status()
  const launch = Launcher.fromEnvironment()
  if (!status.available) {
    if (launch.rank === 0) say(`pleat: ${launch.launcher} started ${launch.size} processes, but the MPI backend is not available: ${status.reason}\n`)
    return 2
  }
  // Processes sharing a machine share its cores: each gets its share of kernel threads (the
  // pool's workers spin while they wait, so more threads than cores only steal time).
  Cpu.setThreads(Math.max(1, Math.floor(availableParallelism() / launch.localSize)))
  const session = MpiSession.start()
  let code: number
  if (session.rank === 0) {
    // A command that throws still ends the others at once (they would wait for an exit status).
    code = await command().catch((error: unknown) => {
      say(`pleat: rank 0's command failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
      return 1
    })
    await tellOthers(session, code)
  } else {
    code = await MpiJob.serve(session)
  }
  // An op that never completed (a failed job's collective, an NCCL link whose peer never
  // joined) cannot be cancelled: abort then. An engine's last runs get a moment to settle first.
  await session.quiet(2000)
  if (session.inFlight > 0 && code === 0)
    say(`pleat: rank ${session.rank} ended with ${session.inFlight} MPI or NCCL operations still waiting for a peer (a message sent but never received?); aborting\n`)
  session.end(session.inFlight > 0 ? Math.max(1, code) : undefined)
  return code
}

/** Sends the exit status to every other rank and waits (a bounded time) for the sends. */
const tellOthers = (session: MpiSession.Session, code: number): Promise<void> =>
  new Promise<void>((resolve) => {
    let left = session.size - 1
    if (left === 0) return resolve()
    const timer = setTimeout(resolve, 10_000)
    for (let r = 1; r < session.size; r++) {
      session.sendControl(r, { t: "exit", code } satisfies MpiJob.Control, () => {
        if (--left === 0) {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  })
