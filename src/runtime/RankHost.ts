/**
 * RankHost: runs a rank program (described as data) on one rank, the same way on every
 * backend. The local backend calls it in process; the threads backend names this module's
 * `host` export as what each worker runs, so each worker imports the user's program through
 * the same code.
 *
 * The host gives the program its RankEvents (whose events go to `emit`) and its Communicator,
 * wrapped so that every collective leaves a debug record on the rank's logger and, when the
 * job is traced, a span from issue to completion. `host.prepare` imports the program's module
 * before the job starts (a worker runs it while it loads), so importing never counts against
 * a collective's timeout.
 */
import * as Effect from "effect/Effect"
import { Communicator } from "../comm/Communicator.js"
import * as LoggedCommunicator from "./LoggedCommunicator.js"
import * as RankEvents from "./RankEvents.js"
import * as RankProgram from "./RankProgram.js"
import * as Trace from "./Trace.js"

/**
 * What the host of every rank gets (cloneable).
 * @category models
 */
export interface HostArgs {
  readonly program: RankProgram.Ref
  readonly tracing: boolean
  /** The pino level of the rank's logger. */
  readonly logLevel: string
}

/**
 * The host's args for a program and a job's listener (traced when it has a tracer; logging at
 * its logger's level).
 * @category constructors
 */
export const argsFor = (program: RankProgram.Ref, listener: RankEvents.Listener): HostArgs => ({
  program,
  tracing: listener.tracer !== undefined,
  logLevel: RankEvents.levelOf(listener),
})

// One import per module and export in this thread (a worker serves many jobs).
const programs = new Map<string, Promise<RankProgram.Program>>()

const programOf = (ref: RankProgram.Ref): Promise<RankProgram.Program> => {
  const key = `${ref.module}#${ref.export}`
  const hit = programs.get(key)
  if (hit !== undefined) return hit
  const loading = RankProgram.load(ref)
  programs.set(key, loading)
  // A failed import is not kept: the next job tries again.
  loading.catch(() => programs.delete(key))
  return loading
}

/**
 * Imports the program of a job (resolves once it is ready to run).
 * @category constructors
 */
export const prepare = async (args: HostArgs): Promise<void> => {
  await programOf(args.program)
}

/**
 * Runs the program on `rank`; its events go to `emit`.
 * @category constructors
 */
export const run = (rank: number, args: HostArgs, emit: (event: RankEvents.RankEvent) => void): Effect.Effect<unknown, unknown, Communicator> =>
  Effect.gen(function* () {
    const program = yield* Effect.promise(() => programOf(args.program))
    const events = RankEvents.make(rank, { tracing: args.tracing, logLevel: args.logLevel }, emit)
    const logged = LoggedCommunicator.make(yield* Communicator, events.log)
    const comm = args.tracing ? Trace.traced(rank, logged, events.span) : logged
    return yield* program(rank, args.program.args).pipe(Effect.provideService(Communicator, comm), Effect.provideService(RankEvents.RankEvents, events))
  })

/**
 * The host of a job as a rank program (what each worker imports and runs).
 * @category constructors
 */
export const hostOf = (args: HostArgs): RankProgram.Ref<HostArgs> => RankProgram.make(import.meta.url, "host", args)

/**
 * The export a worker runs: `(rank, args, emit)`, with `prepare` for its load phase.
 * @category constructors
 */
export const host = Object.assign((rank: number, args: unknown, emit: (event: unknown) => void) => run(rank, args as HostArgs, emit), {
  prepare: (args: unknown) => prepare(args as HostArgs),
})
