/**
 * MpiTransport: the transport of this process's rank for one job on MPI, one rank per process.
 *
 * A collective on a group runs on that group's own MPI communicator (made on first use with
 * MPI_Comm_create_group, which only the members call, and freed when the job ends cleanly). It
 * goes in two MPI steps: an allgather of every member's signature (Header), judged by the same
 * rules as the in-process rendezvous (Verdict), so a mismatched op, dtype, size or split fails
 * on every member with the same error instead of hanging; then the data op (MPI_Iallreduce,
 * Iallgather(v), Ireduce_scatter, Ialltoallv, Ibcast; a barrier is the signature exchange
 * itself). MPI matches the collectives of a communicator by the order they were started, so
 * the collectives of one group run one after the other, in issue order, each started as soon
 * as the one before has started its data op: the group's stream. Groups' streams overlap each
 * other and compute. A group of one member computes its result here (Collective.compute).
 *
 * Reductions use MPI's own algorithms, so a sum may round differently from the other backends'
 * member-order sum (equal to ~1e-16 relative in float64); every other result is bit-equal.
 *
 * A watchdog (Watchdog.ts) fails each collective still running after the timeout with a Timeout
 * naming the members that never arrived, as the other members tell it (Census: MPI itself cannot
 * tell); the job then fails and MPI is aborted, since an MPI collective cannot be cancelled. P2p messages are tensor frames on one
 * communicator of all ranks, received whenever they arrive (MpiSession) into the rank's Inbox,
 * or announcements of what an engine carries (P2p).
 *
 * A DataEngine moves the data of collectives instead of MPI (the NCCL backend:
 * comm/nccl/NcclEngine.ts), handed each group's collectives in issue order. Their signatures
 * are exchanged and judged here first, so a mismatch fails on the host before any device op is
 * queued; with `hostChecks` "alongside" the fixed-size ones and the all-to-alls that say what
 * they receive are handed over as soon as their exchange is issued, held until it agrees.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as MpiAddon from "../../native/MpiAddon.js"
import * as Device from "../../tensor/Device.js"
import { runtimeOf } from "../../tensor/device/Runtimes.js"
import * as DType from "../../tensor/DType.js"
import * as Tensor from "../../tensor/Tensor.js"
import * as Collective from "../Collective.js"
import * as Alone from "../Alone.js"
import * as CommError from "../CommError.js"
import type { Request } from "../Communicator.js"
import * as Endpoint from "../Endpoint.js"
import type { RankTransport } from "../Endpoint.js"
import * as Group from "../Group.js"
import { Inbox } from "../Inbox.js"
import * as Verdict from "../Verdict.js"
import * as Census from "./Census.js"
import { fixedPlan, type FixedPlan, innerOf, prefix, rowsOf, typeOf } from "./DataPlan.js"
import { tagOf } from "./GroupTag.js"
import * as Header from "./Header.js"
import * as HostChecks from "./HostChecks.js"
import * as DataEngine from "./DataEngine.js"
import * as P2p from "./P2p.js"
import * as Watchdog from "./Watchdog.js"
import type { Session } from "./MpiSession.js"

/** One collective of a group's stream. */
interface Task {
  readonly group: Group.Group
  readonly seq: number
  readonly request: Request
  readonly result: Deferred.Deferred<Collective.Output<Collective.Values>, CommError.CommError>
  readonly started: number
  done: boolean
}

interface Stream {
  readonly comm: number
  readonly queue: Array<Task>
  busy: boolean
}

/**
 * The transport of this process's rank for job `job`, and how to end it.
 * @category models
 */
export interface JobTransport extends RankTransport {
  /** Ends the job here: waiting ops fail with Closed; communicators are freed when nothing is in flight. */
  readonly close: (why: string) => void
}

/**
 * Opens job `job` on this process's rank.
 * @category constructors
 */
export const make = (
  session: Session,
  options: { readonly job: number; readonly world: number; readonly timeoutMs: number; readonly hostChecks?: HostChecks.HostChecks },
  engine?: DataEngine.DataEngine,
): JobTransport => {
  const { rank } = session
  const { job, world, timeoutMs, hostChecks = "first" } = options
  const inbox = new Inbox(rank, timeoutMs, (waiting) => session.addon.want(waiting))
  const streams = new Map<string, Stream>()
  const running = new Set<Task>()
  let closed: string | undefined
  let broken = false

  const failP2p = (why: string) => {
    broken = true
    inbox.close(why)
  }
  const p2p = P2p.make(session, job, inbox, failP2p, engine)
  session.openJob(job, p2p.arrived)

  const errorOf = (task: Task, reason: CommError.Reason, detail: string, ranks: ReadonlyArray<number> = []) =>
    CommError.make({ reason, group: Group.format(task.group), op: task.request.op, seq: task.seq, rank, ranks, detail })

  const settle = (task: Task, outcome: Effect.Effect<Collective.Output<Collective.Values>, CommError.CommError>) => {
    if (task.done) return
    task.done = true
    running.delete(task)
    Deferred.doneUnsafe(task.result, outcome)
  }

  const mpiFailed = (task: Task, what: string) => (error: string | undefined) => {
    if (error === undefined) return false
    broken = true
    settle(task, Effect.fail(errorOf(task, "BadInput", `MPI ${what} failed: ${error}`, task.group.ranks)))
    return true
  }

  const streamOf = (group: Group.Group): Stream => {
    const hit = streams.get(group.key)
    if (hit !== undefined) return hit
    const comm = session.commId()
    const ranks = Int32Array.from(group.ranks)
    const stream: Stream = { comm, queue: [], busy: false }
    streams.set(group.key, stream)
    if (group.ranks.length > 1) {
      session.op(
        (id) => session.addon.commCreate(id, comm, ranks, tagOf(`${job}/${group.key}`)),
        (error) => {
          if (error === undefined) return
          broken = true
          for (const t of stream.queue) settle(t, Effect.fail(errorOf(t, "BadInput", `MPI_Comm_create_group failed: ${error}`, group.ranks)))
        },
        [ranks],
      )
    }
    return stream
  }

  /** Starts the next task of a stream once the one before has started its data op. */
  const pump = (stream: Stream): void => {
    if (stream.busy) return
    const task = stream.queue.shift()
    if (task === undefined) return
    if (task.done) return pump(stream)
    stream.busy = true
    let moved = false
    const next = () => {
      if (moved) return
      moved = true
      stream.busy = false
      pump(stream)
    }
    guarded(task, () => run(stream, task, next), next)
  }

  // Work that may run inside an MPI completion, where a throw (a result buffer the memory could
  // not hold) would be lost to Node-API and the op left to time out: it fails the task instead.
  const guarded = (task: Task, work: () => void, after?: () => void): void => {
    try {
      work()
    } catch (error) {
      settle(task, Effect.fail(CommError.thrown({ group: Group.format(task.group), op: task.request.op, seq: task.seq, rank, ranks: [rank] }, error)))
      after?.()
    }
  }

  const run = (stream: Stream, task: Task, next: () => void): void => {
    const { group, request } = task
    const size = group.ranks.length
    const local = Group.localRank(group, rank)
    const t = request.tensor
    const signature = Endpoint.signatureOf(rank, request)
    const buffer = request.out === undefined ? undefined : { length: request.out.data.length, dtype: request.out.dtype }
    if (size === 1) {
      next()
      const verdict = Header.tooManyDims(t.shape) ? undefined : Verdict.judge(group, task.seq, [signature], [buffer])
      if (verdict !== undefined) return settle(task, Effect.fail(verdict(rank)))
      // A device-resident contribution that comes back as it is stays on its device (a copy there).
      if (t.isResident && request.out === undefined && Device.isAccelerator(t.device) && Alone.keepsItsRows({ shape: t.shape, ...request })) {
        const runtime = runtimeOf(t.device)
        const copy = runtime.allocate(t.dtype, t.size)
        runtime.kernels.copy(t.deviceArray(runtime), copy)
        const splits = request.op === "allGatherV" || request.op === "allToAllV" ? { splits: [t.shape[0] ?? 1] } : {}
        return settle(task, Effect.succeed({ data: copy, shape: t.shape, ...splits }))
      }
      const contribution = Collective.contribution(signature, t.readHost(), request.out?.data)
      return settle(
        task,
        Effect.sync(() => Collective.compute([contribution], false)[0] as Collective.Output),
      )
    }
    // A collective of an engine's job handed over right after its signatures' exchange is
    // issued, its outcome held until the verdict (HostChecks.handsOverEarly).
    const early = engine !== undefined && request.out === undefined && HostChecks.handsOverEarly(hostChecks, signature, size)
    let verified = false
    let release: (() => void) | undefined
    const width = Header.length(size)
    const mine = new Float64Array(width)
    // An engine's data op never fuses with the signatures' exchange.
    const plan = engine === undefined ? fixedPlan(request, signature, size, local) : undefined
    Header.encode({ signature, buffer, fast: plan !== undefined }, size, mine)
    const all = new Float64Array(width * size)
    const op = (request.reduce ?? "sum") === "max" ? MpiAddon.OP.max : MpiAddon.OP.sum
    session.op(
      (id) =>
        plan === undefined
          ? session.addon.allGather(id, stream.comm, mine, all, width, MpiAddon.TYPE.float64)
          : session.addon.checked(id, stream.comm, mine, all, plan.dataOp, t.readHost(), plan.recv, plan.count, plan.recvCounts, typeOf(t.dtype), op),
      (error, fast) => {
        if (mpiFailed(task, fast ? request.op : "allgather of the signatures")(error)) return early ? undefined : next()
        if (fast && plan !== undefined) {
          // Every member agreed and the engine ran the data op at once.
          next()
          return settle(task, Effect.succeed(plan.output))
        }
        const declared = group.ranks.map((r, i) => Header.decode(all, i * width, size, r))
        const parts = declared.map((d) => d.signature)
        const verdict =
          Header.tooDeep(group, task.seq, parts) ??
          Verdict.judge(
            group,
            task.seq,
            parts,
            declared.map((d) => d.buffer),
          )
        if (verdict !== undefined) {
          if (!early) next()
          return settle(task, Effect.fail(verdict(rank)))
        }
        const receives = early ? HostChecks.receivesProblem(signature, parts, local) : undefined // planned from its recvSplits
        if (receives !== undefined) return settle(task, Effect.fail(errorOf(task, "Mismatch", receives.detail, [rank, receives.from])))
        verified = true
        if (early) return release?.()
        if (task.done) return next() // timed out or closed meanwhile: the stream is unusable anyway
        guarded(task, () => (engine === undefined ? startData(stream, task, parts, local, plan) : handOver(engine, stream, task, parts, local)))
        next()
      },
      // (An engine reads the tensor where it lies: no host copy is made for it here.)
      [mine, all, plan === undefined ? undefined : t.readHost(), plan?.recv, plan?.recvCounts],
    )
    if (early && engine !== undefined) {
      if (!task.done) release = handOver(engine, stream, task, HostChecks.assumed(group, signature, local), local, !verified)
      next()
    }
  }

  /** The data op of a task handed to the engine, with every member's signature (agreed or assumed); `held`: see DataEngine.startHeld. */
  const handOver = (engine: DataEngine.DataEngine, stream: Stream, task: Task, parts: ReadonlyArray<Collective.Signature>, local: number, held = false) =>
    DataEngine.startHeld(engine, stream.comm, task, parts, local, held, (outcome) => {
      if (outcome.ok) return settle(task, Effect.succeed(outcome.output))
      broken = true
      settle(task, Effect.fail(errorOf(task, "BadInput", `${engine.backend}: ${outcome.error}`, task.group.ranks)))
    })

  /** The data op of a task whose signatures agree. */
  const startData = (stream: Stream, task: Task, parts: ReadonlyArray<Collective.Signature>, local: number, plan: FixedPlan | undefined): void => {
    const { request } = task
    const t = request.tensor
    const send = t.readHost()
    const first = parts[0] as Collective.Signature
    const inner = innerOf(first.shape)
    const type = typeOf(t.dtype)
    const op = (request.reduce ?? "sum") === "max" ? MpiAddon.OP.max : MpiAddon.OP.sum
    const target = (length: number): DType.Storage => request.out?.data ?? DType.allocate(t.dtype, length)
    const complete = (data: DType.Storage, shape: ReadonlyArray<number>, splits?: ReadonlyArray<number>) => (error: string | undefined) => {
      if (mpiFailed(task, request.op)(error)) return
      settle(task, Effect.succeed({ data, shape, ...(splits === undefined ? {} : { splits }) }))
    }
    const c = stream.comm
    const addon = session.addon
    switch (first.op) {
      case "barrier":
        return settle(task, Effect.succeed({ data: DType.allocate(t.dtype, 0), shape: [0] }))
      case "allReduce":
      case "allGather":
      case "reduceScatter":
      case "reduceScatterV": {
        // Agreed members plan the same sizes; a member whose plan failed was judged above.
        const p = plan ?? fixedPlan(request, parts[local] as Collective.Signature, parts.length, local)
        if (p === undefined) return settle(task, Effect.die(new Error(`unreachable: ${first.op} agreed but has no plan`)))
        const done = complete(p.output.data, p.output.shape, p.output.splits)
        const keep = [send, p.recv, p.recvCounts]
        if (first.op === "allReduce") return session.op((id) => addon.allReduce(id, c, send, p.recv, p.count, type, op), done, keep)
        if (first.op === "allGather") return session.op((id) => addon.allGather(id, c, send, p.recv, p.count, type), done, keep)
        return session.op((id) => addon.reduceScatter(id, c, send, p.recv, p.recvCounts, type, op), done, keep)
      }
      case "broadcast": {
        const root = parts[first.root ?? 0] as Collective.Signature
        const length = Tensor.sizeOf(root.shape)
        const out = target(length)
        if (local === (first.root ?? 0)) out.set(send)
        return session.op((id) => addon.bcast(id, c, out, length, first.root ?? 0, type), complete(out, root.shape), [out])
      }
      case "allGatherV": {
        const splits = parts.map((p) => rowsOf(p.shape))
        const counts = splits.map((r) => r * inner)
        const total = splits.reduce((a, b) => a + b, 0)
        const out = target(total * inner)
        const recvCounts = Int32Array.from(counts)
        const displs = prefix(counts)
        return session.op((id) => addon.allGatherV(id, c, send, send.length, out, recvCounts, displs, type), complete(out, [total, ...t.shape.slice(1)], splits), [
          send,
          out,
          recvCounts,
          displs,
        ])
      }
      case "allToAllV": {
        const sendRows = request.sendSplits ?? []
        const recvRows = parts.map((p) => (p.sendSplits ?? [])[local] as number)
        const sendCounts = Int32Array.from(sendRows.map((r) => r * inner))
        const recvCounts = Int32Array.from(recvRows.map((r) => r * inner))
        const sendDispls = prefix([...sendCounts])
        const recvDispls = prefix([...recvCounts])
        const total = recvRows.reduce((a, b) => a + b, 0)
        const out = target(total * inner)
        return session.op((id) => addon.allToAllV(id, c, send, sendCounts, sendDispls, out, recvCounts, recvDispls, type), complete(out, [total, ...t.shape.slice(1)], recvRows), [
          send,
          out,
          sendCounts,
          recvCounts,
          sendDispls,
          recvDispls,
        ])
      }
    }
  }

  const census = Census.make(session, job)
  const stopWatchdog = Watchdog.start(
    running,
    timeoutMs,
    census,
    engine,
    () => {
      broken = true
    },
    (task, detail, ranks) => settle(task, Effect.fail(errorOf(task, "Timeout", detail, ranks))),
  )

  const enter = (group: Group.Group, seq: number, request: Request): Effect.Effect<Collective.Output<Collective.Values>, CommError.CommError> => {
    const result = Deferred.makeUnsafe<Collective.Output<Collective.Values>, CommError.CommError>()
    const task: Task = { group, seq, request, result, started: performance.now(), done: false }
    if (Group.localRank(group, rank) < 0) {
      settle(task, Effect.fail(errorOf(task, "BadInput", `rank ${rank} is not a member`, [rank])))
    } else if (closed !== undefined) {
      settle(task, Effect.fail(errorOf(task, "Closed", closed)))
    } else {
      running.add(task)
      census.issued(group, seq)
      const stream = streamOf(group)
      stream.queue.push(task)
      pump(stream)
    }
    return Deferred.await(result)
  }

  const close = (why: string): void => {
    if (closed !== undefined) return
    closed = why
    stopWatchdog()
    const idle = running.size === 0
    for (const task of [...running]) settle(task, Effect.fail(errorOf(task, "Closed", why)))
    inbox.close(why)
    census.close()
    session.closeJob(job)
    // Only a clean job's communicators are freed: one with a collective that never completed
    // is left to MPI_Abort.
    engine?.close(!broken && idle && why === "the job ended")
    if (!broken && idle && why === "the job ended") {
      for (const s of streams.values())
        if (s.queue.length === 0)
          session.op(
            (id) => session.addon.commFree(id, s.comm),
            () => undefined,
          )
    }
    streams.clear()
  }

  // MPI's own data ops complete once MPI is done with both buffers, into results allocated here;
  // an engine's (NCCL) may hand over early and keep device copies: not claimed.
  return { rank, world, backend: engine?.backend ?? "mpi", inbox, closed: () => closed, enter, post: p2p.post, close, privateStorage: engine === undefined }
}
