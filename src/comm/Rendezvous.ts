/**
 * Rendezvous: where the members of a group meet for each collective, by sequence number. The
 * rules that make collectives safe live here once, for every transport.
 *
 * Each rank numbers its collectives per group (0, 1, 2, ...). The k-th collective of every
 * member meets in slot k. The first arrival fixes the op's signature (op, dtype, sizes); a
 * member that brings another signature fails the whole slot at once with a Mismatch naming who
 * issued what, so a skipped or reordered collective is a diagnosis, never a hang. One member's
 * bad arguments fail everyone (BadInput for it, Mismatch for the others). A receive buffer
 * that cannot hold its member's result fails the slot before it completes. One watchdog per
 * job fails every arrived member of a slot older than the timeout with a Timeout naming the
 * ranks that arrived and those still missing; later arrivals at a failed slot fail at once.
 *
 * The rendezvous reads only signatures, never data. What a transport does with a complete
 * slot (compute every result in place, or hand each member the others' parts to compute its
 * own) and how it tells a member of a failure are the transport's: `Transport` below.
 */
import * as Chunked from "./Chunked.js"
import * as Collective from "./Collective.js"
import * as CommError from "./CommError.js"
import * as Group from "./Group.js"
import * as Verdict from "./Verdict.js"

/**
 * What a transport brings to a slot: a member's part (its signature and wherever its data
 * lies) and a handle to answer that member.
 * @category models
 */
export interface Arrival<P extends Collective.Signature, W> {
  readonly part: P
  readonly waiter: W
}

/**
 * How a transport answers members.
 * @category models
 */
export interface Transport<P extends Collective.Signature, W> {
  /** How long a member waits for the others, in ms. */
  readonly timeoutMs: number
  /** Tells one member that its collective failed. */
  readonly fail: (waiter: W, error: CommError.CommError) => void
  /** Every member arrived and agreed: deliver the results (a throw fails the slot). */
  readonly complete: (group: Group.Group, seq: number, arrivals: ReadonlyArray<Arrival<P, W>>) => void
  /** The receive buffer a member gave, if any (checked before completion). */
  readonly receiveBuffer?: (part: P) => { readonly length: number; readonly dtype: Collective.Signature["dtype"] } | undefined
}

interface Slot<P extends Collective.Signature, W> {
  readonly group: Group.Group
  readonly seq: number
  readonly arrivals: Array<Arrival<P, W> | undefined>
  /** Members still waiting for an answer. */
  readonly waiting: Array<boolean>
  arrived: number
  failure: ((rank: number) => CommError.CommError) | undefined
  /** The first arrival: every later arrival must agree with it. */
  first: Collective.Signature | undefined
  /** When the first member arrived (ms, performance.now). */
  readonly created: number
  readonly op: Collective.Op
}

/**
 * The meeting place of every group of one job.
 * @category models
 */
export class Rendezvous<P extends Collective.Signature, W> {
  readonly transport: Transport<P, W>
  #slots = new Map<string, Slot<P, W>>()
  #closed: string | undefined
  #watchdog: ReturnType<typeof setInterval> | undefined

  constructor(transport: Transport<P, W>) {
    this.transport = transport
  }

  /** Fails every waiting member and every later arrival with Closed. */
  close(why: string): void {
    this.#closed = why
    for (const s of this.#slots.values()) {
      if (s.failure === undefined)
        this.#failSlot(s, (rank) => CommError.make({ reason: "Closed", group: Group.format(s.group), op: s.op, seq: s.seq, rank, ranks: [], detail: why }))
    }
    this.#slots.clear()
    this.#stopWatch()
  }

  /**
   * One watchdog per job, not one timer per collective (a timer per collective costs more than
   * a small collective): while collectives are open it wakes every quarter timeout and fails
   * the ones older than the timeout. It never keeps the process alive on its own.
   */
  #watch(): void {
    if (this.#watchdog !== undefined) return
    const timeoutMs = this.transport.timeoutMs
    this.#watchdog = setInterval(
      () => {
        const now = performance.now()
        for (const [key, slot] of this.#slots) {
          if (slot.failure === undefined && now - slot.created >= timeoutMs) this.#timedOut(slot)
          if (slot.failure !== undefined && slot.arrived === slot.group.ranks.length) this.#slots.delete(key)
        }
        if (this.#slots.size === 0) this.#stopWatch()
      },
      Math.max(1, Math.floor(timeoutMs / 4)),
    )
    this.#watchdog.unref?.()
  }

  #stopWatch(): void {
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog)
    this.#watchdog = undefined
  }

  /** Member `part.rank` arrives at collective `seq` of `group`; it is answered through `waiter`. */
  arrive(group: Group.Group, seq: number, part: P, waiter: W): void {
    const rank = part.rank
    const local = Group.localRank(group, rank)
    const name = Group.format(group)
    if (this.#closed !== undefined) {
      return this.transport.fail(waiter, CommError.make({ reason: "Closed", group: name, op: part.op, seq, rank, ranks: [], detail: this.#closed }))
    }
    if (local < 0) {
      return this.transport.fail(waiter, CommError.make({ reason: "BadInput", group: name, op: part.op, seq, rank, ranks: [rank], detail: `rank ${rank} is not a member` }))
    }
    const key = `${Group.key(group)}#${seq}`
    let slot = this.#slots.get(key)
    if (slot === undefined) {
      const n = group.ranks.length
      slot = {
        group,
        seq,
        arrivals: new Array(n),
        waiting: new Array<boolean>(n).fill(false),
        arrived: 0,
        failure: undefined,
        first: undefined,
        created: performance.now(),
        op: part.op,
      }
      this.#slots.set(key, slot)
      this.#watch()
    }
    const s = slot
    if (s.arrivals[local] !== undefined) {
      return this.transport.fail(
        waiter,
        CommError.make({ reason: "BadInput", group: name, op: part.op, seq, rank, ranks: [rank], detail: "this rank arrived twice at one collective" }),
      )
    }
    s.arrivals[local] = { part, waiter }
    s.arrived++
    if (s.failure !== undefined) return this.transport.fail(waiter, s.failure(rank))
    s.waiting[local] = true
    const own = Collective.checkOwn(part, group.ranks.length)
    if (own !== undefined) {
      this.#failSlot(s, (r) =>
        CommError.make({ reason: r === rank ? "BadInput" : "Mismatch", group: name, op: part.op, seq, rank: r, ranks: [rank], detail: `rank ${rank}: ${own}` }),
      )
    } else this.#checkAgreement(s, part)
    if (s.failure === undefined && s.arrived === group.ranks.length) this.#complete(key, s)
  }

  #checkAgreement(s: Slot<P, W>, c: Collective.Signature): void {
    if (s.first === undefined) s.first = c
    if (Collective.agrees(s.first, c)) return
    const present = s.arrivals.flatMap((a) => (a === undefined ? [] : [a.part]))
    const detail = Verdict.mismatch(present)
    if (detail === undefined) return
    const ranks = present.map((p) => p.rank)
    const op = present[0]?.op ?? "collective"
    this.#failSlot(s, (r) => CommError.make({ reason: "Mismatch", group: Group.format(s.group), op, seq: s.seq, rank: r, ranks, detail }))
  }

  #failSlot(s: Slot<P, W>, failure: (rank: number) => CommError.CommError): void {
    s.failure = failure
    s.arrivals.forEach((a, i) => {
      if (a === undefined || !s.waiting[i]) return
      s.waiting[i] = false
      this.transport.fail(a.waiter, failure(s.group.ranks[i] as number))
    })
  }

  #timedOut(s: Slot<P, W>): void {
    const arrived = s.group.ranks.filter((_, i) => s.arrivals[i] !== undefined)
    const missing = s.group.ranks.filter((_, i) => s.arrivals[i] === undefined)
    const timeoutMs = this.transport.timeoutMs
    this.#failSlot(s, (rank) =>
      CommError.make({
        reason: "Timeout",
        group: Group.format(s.group),
        op: s.op,
        seq: s.seq,
        rank,
        ranks: missing,
        detail: `waited ${timeoutMs} ms; arrived: [${arrived.join(",")}], never arrived: [${missing.join(",")}] (a rank that skipped this collective, stopped, or is stuck before it)`,
      }),
    )
  }

  #complete(key: string, s: Slot<P, W>): void {
    const arrivals = s.arrivals as Array<Arrival<P, W>>
    const parts = arrivals.map((a) => a.part)
    const op = parts[0]?.op ?? "collective"
    const badInput = (detail: string) => this.#failSlot(s, (r) => CommError.make({ reason: "BadInput", group: Group.format(s.group), op, seq: s.seq, rank: r, ranks: [], detail }))
    const receiveBuffer = this.transport.receiveBuffer
    if (receiveBuffer !== undefined) {
      for (let j = 0; j < parts.length; j++) {
        const problem = Collective.receiveBufferProblem(parts, j, receiveBuffer(parts[j] as P))
        if (problem !== undefined) return badInput(String(new RangeError(problem)))
      }
    }
    // An all-to-all's members must expect what the others send them, where they declare it.
    const first = parts[0]
    const counts = first?.op === "allToAllV" ? Chunked.countsProblem(parts, first.chunks ?? 1) : undefined
    if (counts !== undefined) {
      const ranks = parts.map((p) => p.rank)
      return this.#failSlot(s, (r) => CommError.make({ reason: "Mismatch", group: Group.format(s.group), op, seq: s.seq, rank: r, ranks, detail: counts }))
    }
    this.#slots.delete(key)
    s.waiting.fill(false)
    try {
      this.transport.complete(s.group, s.seq, arrivals)
    } catch (error) {
      s.waiting.fill(true)
      this.#failSlot(s, (r) => CommError.thrown({ group: Group.format(s.group), op, seq: s.seq, rank: r, ranks: [] }, error))
    }
  }
}
