/**
 * MpiJob: a job whose ranks are the processes of an MPI launch, one rank each.
 *
 * Rank 0 is the driver: it runs the command (training, its checks, its output) and every job
 * starts there, as on the other backends. For each job it sends the rank program (as data,
 * RankHost's args) to the other processes, runs rank 0's share itself, and receives the other
 * ranks' events (step reports, spans, log records) and results as control messages; so the
 * job's listener, the progress bar, the summary and the checkpoints' manifests live on rank 0
 * only, exactly as in one process. The job succeeds with every rank's result in rank order or
 * fails with the first rank that failed (RankFailed); then the others are told to close (their
 * waiting ops fail with Closed). A collective that never completes cannot be cancelled in MPI,
 * so after such a failure the process ends with MPI_Abort (MpiProcess), which ends every
 * process of the launch.
 *
 * The other processes serve: they wait for a job, run their rank of it and report, until rank 0
 * tells them the exit status of the command (MpiProcess).
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { Communicator } from "../comm/Communicator.js"
import * as Endpoint from "../comm/Endpoint.js"
import type * as HostChecks from "../comm/mpi/HostChecks.js"
import type { Session } from "../comm/mpi/MpiSession.js"
import * as MpiTransport from "../comm/mpi/MpiTransport.js"
import * as NcclEngine from "../comm/nccl/NcclEngine.js"
import type { JobSpec } from "./Backend.js"
import { RankFailed } from "./JobError.js"
import * as DistributedDebug from "./DistributedDebug.js"
import * as NcclOpen from "./NcclOpen.js"
import * as RankEvents from "./RankEvents.js"
import * as RankHost from "./RankHost.js"
import * as RankProgram from "./RankProgram.js"
import * as Failure from "./threads/Failure.js"
import type { WireFailure } from "../comm/threads/Protocol.js"

/**
 * The control messages between rank 0 and the others.
 * @category models
 */
export type Control =
  | {
      readonly t: "job"
      readonly job: number
      readonly world: number
      readonly host: RankHost.HostArgs
      readonly timeoutMs: number
      readonly data: DataPath
      readonly hostChecks: HostChecks.HostChecks
    }
  | { readonly t: "event"; readonly job: number; readonly event: RankEvents.RankEvent }
  | { readonly t: "done"; readonly job: number; readonly ok: true; readonly value: unknown }
  | { readonly t: "done"; readonly job: number; readonly ok: false; readonly failure: WireFailure }
  | { readonly t: "close"; readonly job: number; readonly why: string }
  | { readonly t: "exit"; readonly code: number }

/**
 * What moves a job's collective data: MPI's own ops, or NCCL (the nccl backend).
 * @category models
 */
export type DataPath = "mpi" | "nccl"

const runRank = (session: Session, m: Extract<Control, { t: "job" }>, emit: (event: RankEvents.RankEvent) => void) => {
  const { job, world, host, timeoutMs, data, hostChecks } = m
  const transport = MpiTransport.make(session, { job, world, timeoutMs, hostChecks }, data === "nccl" ? NcclEngine.make(session, NcclOpen.open()) : undefined)
  const program = RankHost.run(session.rank, host, emit).pipe(Effect.provideService(Communicator, Endpoint.make(transport)))
  return { transport, program }
}

const sendAll = (session: Session, value: Control): void => {
  for (let r = 0; r < session.size; r++) if (r !== session.rank) session.sendControl(r, value, () => undefined)
}

let nextJob = 1
const listeners = new Map<number, (from: number, message: Control) => void>()

/**
 * Runs a job from rank 0 (see the file header).
 * @category constructors
 */
export const drive = (session: Session, spec: JobSpec, data: DataPath = "mpi"): Effect.Effect<Array<unknown>, RankFailed> =>
  Effect.gen(function* () {
    if (spec.world !== session.size) {
      return yield* Effect.die(new Error(`a job of ${spec.world} ranks on an MPI launch of ${session.size} processes (the world must equal the number of processes)`))
    }
    const job = nextJob++
    const timeoutMs = spec.timeoutMs ?? 30_000
    const listener = spec.listener ?? {}
    RankProgram.checkCloneable(spec.program)
    const host = RankHost.argsFor(spec.program, listener)
    yield* Effect.tryPromise({ try: () => RankHost.prepare(host), catch: (error) => new RankFailed({ rank: 0, cause: Cause.die(error) }) })
    const deliver = RankEvents.deliver(listener)
    const results = new Array<unknown>(session.size)
    let finished = 0
    const outcome = Deferred.makeUnsafe<Array<unknown>, RankFailed>()
    const finish = (rank: number, value: unknown) => {
      results[rank] = value
      if (++finished === session.size) Deferred.doneUnsafe(outcome, Effect.succeed(results))
    }
    const fail = (failed: RankFailed) => Deferred.doneUnsafe(outcome, Effect.fail(failed))
    listeners.set(job, (from, m) => {
      if (m.t === "event") {
        try {
          deliver(from, m.event)
        } catch (error) {
          fail(new RankFailed({ rank: from, cause: Cause.die(error) }))
        }
      } else if (m.t === "done") {
        if (m.ok) finish(from, m.value)
        else fail(new RankFailed({ rank: from, cause: Failure.rebuild(m.failure) }))
      }
    })
    session.onControl((from, value) => listeners.get((value as { job: number }).job)?.(from, value as Control))
    // NCCL is opened here before any rank starts, so that its absence fails the job at once.
    // Its host checks (DistributedDebug) are read here too; every rank takes them from rank 0.
    const hostChecks = yield* Effect.try({
      try: (): HostChecks.HostChecks => {
        if (data !== "nccl") return "first"
        NcclOpen.open()
        return DistributedDebug.hostChecks()
      },
      catch: (error) => new RankFailed({ rank: 0, cause: Cause.die(error) }),
    })
    const message: Control = { t: "job", job, world: session.size, host, timeoutMs, data, hostChecks }
    sendAll(session, message)
    // once a job: rank 0's job message
    const { transport, program } = runRank(session, { ...message, host: structuredClone(host) }, (event) => deliver(0, event))
    const own: Fiber.Fiber<unknown, unknown> = yield* Effect.forkChild(
      program.pipe(
        Effect.matchCauseEffect({
          onSuccess: (value) => Effect.sync(() => finish(0, value)),
          onFailure: (cause) => Effect.sync(() => fail(new RankFailed({ rank: 0, cause }))),
        }),
      ),
    )
    const release = session.hold()
    const exit = yield* Effect.exit(Deferred.await(outcome))
    release()
    listeners.delete(job)
    const why = Exit.isSuccess(exit) ? "the job ended" : "the job failed"
    if (Exit.isFailure(exit)) sendAll(session, { t: "close", job, why })
    transport.close(why)
    yield* Fiber.interrupt(own)
    return yield* exit
  })

/**
 * Serves jobs on a rank other than 0 until rank 0 sends the exit status; resolves with it.
 * @category constructors
 */
export const serve = (session: Session): Promise<number> =>
  new Promise<number>((resolve) => {
    const release = session.hold()
    const running = new Map<number, (why: string) => void>()
    session.onControl((from, value) => {
      const m = value as Control
      if (from !== 0) return
      if (m.t === "exit") {
        release()
        return resolve(m.code)
      }
      if (m.t === "close") return running.get(m.job)?.(m.why)
      if (m.t !== "job") return
      const report = (message: Control) => {
        try {
          session.sendControl(0, message, () => undefined)
        } catch (error) {
          // A value that cannot be serialized: rank 0 learns why instead of waiting for it.
          session.sendControl(0, { t: "done", job: m.job, ok: false, failure: { kind: "die", error: Failure.flattenValue(error) } }, () => undefined)
        }
      }
      let ran: ReturnType<typeof runRank>
      try {
        ran = runRank(session, m, (event) => report({ t: "event", job: m.job, event }))
      } catch (error) {
        // This process cannot take part (NCCL missing here): rank 0 learns why.
        return report({ t: "done", job: m.job, ok: false, failure: { kind: "die", error: Failure.flattenValue(error) } })
      }
      const { transport, program } = ran
      const fiber = Effect.runFork(program)
      // Closing fails the rank's waiting ops, then stops whatever the program still runs.
      running.set(m.job, (why) => {
        running.delete(m.job)
        transport.close(why)
        Effect.runFork(Fiber.interrupt(fiber))
      })
      fiber.addObserver((exit) => {
        const wasRunning = running.delete(m.job)
        transport.close(Exit.isSuccess(exit) ? "the job ended" : "the job failed")
        if (!wasRunning) return
        if (Exit.isSuccess(exit)) return report({ t: "done", job: m.job, ok: true, value: exit.value })
        report({ t: "done", job: m.job, ok: false, failure: Failure.flatten(exit.cause) })
      })
    })
  })
