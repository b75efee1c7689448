/**
 * Coordinator: the rendezvous of a threads job, on the main thread.
 *
 * It follows Rendezvous.ts rule for rule, on metadata only: members meet in slot
 * (group key, sequence number); the first disagreeing arrival fails the whole slot with a
 * Mismatch naming who issued what; one member's bad arguments fail everyone (BadInput for it,
 * Mismatch for the others); one watchdog per job fails every arrived member of a slot older
 * than the timeout with a Timeout naming the arrived and missing ranks, and later arrivals fail
 * at once. When the last member arrives the coordinator computes nothing: it hands every member
 * the list of parts (SAB views) and each member computes its own output in its own thread, in
 * parallel with the others. What Collective.compute would reject for the whole slot (a
 * receive buffer of the wrong size) is checked here, so the slot still fails as a whole.
 *
 * A slot that failed never completes, so nobody ever reads a failed slot's buffers: the
 * owners may reuse them as soon as they see the failure.
 */
import * as Collective from "../Collective.js"
import * as DType from "../../tensor/DType.js"
import * as Tensor from "../../tensor/Tensor.js"
import * as Group from "../Group.js"
import type { ErrorFields, Part, ToWorker } from "./Protocol.js"

interface Slot {
  readonly group: Group.Group
  readonly seq: number
  readonly parts: Array<Part | undefined>
  /** The op id of each member still waiting (undefined: not arrived, or already answered). */
  readonly waiting: Array<number | undefined>
  arrived: number
  failure: ((rank: number) => ErrorFields) | undefined
  /** The first arrival: every later arrival must agree with it. */
  first: Collective.Contribution | undefined
  /** When the first member arrived (ms, performance.now). */
  readonly created: number
  readonly op: Collective.Op
}

/** Where the coordinator posts: one rank's worker. */
export type Post = (rank: number, message: ToWorker) => void

const empty = { float32: DType.allocate("float32", 0), float64: DType.allocate("float64", 0) }

// checkOwn, agrees and signature read only the parameters, never the data.
const asContribution = (p: Part): Collective.Contribution => {
  const { out: _out, buffer: _buffer, offset: _offset, length: _length, counter: _counter, ...meta } = p
  return { ...meta, data: empty[p.dtype] }
}

const rows = (shape: ReadonlyArray<number>) => shape[0] ?? 1

// The length of member j's result, where a receive buffer is used (as Collective.compute does).
const resultLength = (parts: ReadonlyArray<Part>, j: number): number | undefined => {
  const first = parts[0] as Part
  const inner = Tensor.sizeOf(first.shape.slice(1))
  switch (first.op) {
    case "barrier":
      return 0
    case "allReduce":
      return first.length
    case "broadcast":
      return (parts[first.root ?? 0] as Part).length
    case "allGather":
    case "allGatherV":
      return parts.reduce((a, p) => a + rows(p.shape), 0) * inner
    case "allToAllV":
      return parts.reduce((a, p) => a + ((p.sendSplits ?? [])[j] as number), 0) * inner
    default:
      return undefined
  }
}

/**
 * The coordinator of one job.
 * @category models
 */
export class Coordinator {
  readonly job: number
  readonly timeoutMs: number
  readonly #post: Post
  #slots = new Map<string, Slot>()
  #closed: string | undefined
  #watchdog: ReturnType<typeof setInterval> | undefined

  constructor(job: number, timeoutMs: number, post: Post) {
    this.job = job
    this.timeoutMs = timeoutMs
    this.#post = post
  }

  /** Every later arrival fails with Closed (the workers fail their own waiting ops). */
  close(why: string): void {
    this.#closed = why
    this.#slots.clear()
    this.#stopWatch()
  }

  // One timer per job, as in Rendezvous: wakes every quarter timeout while slots are open.
  #watch(): void {
    if (this.#watchdog !== undefined) return
    this.#watchdog = setInterval(() => {
      const now = performance.now()
      for (const [key, slot] of this.#slots) {
        if (slot.failure === undefined && now - slot.created >= this.timeoutMs) this.#timedOut(slot)
        if (slot.failure !== undefined && slot.arrived === slot.group.ranks.length) this.#slots.delete(key)
      }
      if (this.#slots.size === 0) this.#stopWatch()
    }, Math.max(1, Math.floor(this.timeoutMs / 4)))
    this.#watchdog.unref?.()
  }

  #stopWatch(): void {
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog)
    this.#watchdog = undefined
  }

  #fail(rank: number, id: number, error: ErrorFields): void {
    this.#post(rank, { t: "fail", job: this.job, id, error })
  }

  /** Member `part.rank` arrives at collective `seq` of `group` as its op `id`. */
  arrive(id: number, group: Group.Group, seq: number, part: Part): void {
    const rank = part.rank
    const local = Group.localRank(group, rank)
    const name = Group.format(group)
    if (this.#closed !== undefined) {
      return this.#fail(rank, id, { reason: "Closed", group: name, op: part.op, seq, rank, ranks: [], detail: this.#closed })
    }
    if (local < 0) {
      return this.#fail(rank, id, { reason: "BadInput", group: name, op: part.op, seq, rank, ranks: [rank], detail: `rank ${rank} is not a member` })
    }
    const key = `${Group.key(group)}#${seq}`
    let slot = this.#slots.get(key)
    if (slot === undefined) {
      const n = group.ranks.length
      slot = { group, seq, parts: new Array<Part | undefined>(n), waiting: new Array<number | undefined>(n), arrived: 0, failure: undefined, first: undefined, created: performance.now(), op: part.op }
      this.#slots.set(key, slot)
      this.#watch()
    }
    const s = slot
    if (s.parts[local] !== undefined) {
      return this.#fail(rank, id, { reason: "BadInput", group: name, op: part.op, seq, rank, ranks: [rank], detail: "this rank arrived twice at one collective" })
    }
    s.parts[local] = part
    s.waiting[local] = id
    s.arrived++
    if (s.failure === undefined) {
      const c = asContribution(part)
      const own = Collective.checkOwn(c, group.ranks.length)
      if (own !== undefined) {
        this.#failSlot(s, (r) => ({ reason: r === rank ? "BadInput" : "Mismatch", group: name, op: part.op, seq, rank: r, ranks: [rank], detail: `rank ${rank}: ${own}` }))
      } else this.#checkAgreement(s, c)
    } else {
      s.waiting[local] = undefined
      this.#fail(rank, id, s.failure(rank))
    }
    if (s.failure === undefined && s.arrived === group.ranks.length) this.#complete(key, s)
  }

  #checkAgreement(s: Slot, c: Collective.Contribution): void {
    if (s.first === undefined) s.first = c
    if (Collective.agrees(s.first, c)) return
    const present = s.parts.flatMap((p) => (p === undefined ? [] : [asContribution(p)]))
    const signatures = new Map<string, Array<number>>()
    for (const p of present) {
      const sig = Collective.signature(p)
      signatures.set(sig, [...(signatures.get(sig) ?? []), p.rank])
    }
    if (signatures.size <= 1) return
    const detail = [...signatures.entries()].map(([sig, ranks]) => `rank${ranks.length > 1 ? "s" : ""} ${ranks.join(",")} issued ${sig}`).join("; ")
    const ranks = present.map((p) => p.rank)
    const op = present[0]?.op ?? "collective"
    this.#failSlot(s, (r) => ({ reason: "Mismatch", group: Group.format(s.group), op, seq: s.seq, rank: r, ranks, detail }))
  }

  #failSlot(s: Slot, failure: (rank: number) => ErrorFields): void {
    s.failure = failure
    s.waiting.forEach((id, i) => {
      if (id === undefined) return
      const rank = s.group.ranks[i] as number
      s.waiting[i] = undefined
      this.#fail(rank, id, failure(rank))
    })
  }

  #timedOut(s: Slot): void {
    const arrived = s.group.ranks.filter((_, i) => s.parts[i] !== undefined)
    const missing = s.group.ranks.filter((_, i) => s.parts[i] === undefined)
    this.#failSlot(s, (rank) => ({
      reason: "Timeout",
      group: Group.format(s.group),
      op: s.op,
      seq: s.seq,
      rank,
      ranks: missing,
      detail: `waited ${this.timeoutMs} ms; arrived: [${arrived.join(",")}], never arrived: [${missing.join(",")}] (a rank that skipped this collective, stopped, or is stuck before it)`,
    }))
  }

  #complete(key: string, s: Slot): void {
    const parts = s.parts as Array<Part>
    for (let j = 0; j < parts.length; j++) {
      const p = parts[j] as Part
      const length = p.out === undefined ? undefined : resultLength(parts, j)
      if (p.out === undefined || length === undefined || (p.out.length === length && p.out.dtype === p.dtype)) continue
      // The text Collective.compute throws, as Rendezvous reports it.
      const detail = String(new RangeError(`rank ${p.rank}: the receive buffer holds ${p.out.length} ${p.out.dtype} elements; the result needs ${length} ${p.dtype}`))
      return this.#failSlot(s, (r) => ({ reason: "BadInput", group: Group.format(s.group), op: parts[0]?.op ?? "collective", seq: s.seq, rank: r, ranks: [], detail }))
    }
    this.#slots.delete(key)
    s.waiting.forEach((id, i) => {
      if (id !== undefined) this.#post(s.group.ranks[i] as number, { t: "complete", job: this.job, id, parts })
    })
  }
}
