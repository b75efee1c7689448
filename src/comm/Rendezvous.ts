/**
 * Rendezvous: where the members of a group meet for each collective, by sequence number.
 *
 * Each rank numbers its collectives per group (0, 1, 2, ...). The k-th collective of every
 * member meets in slot k. The first arrival fixes the op's signature (op, dtype, sizes); a
 * member that brings another signature fails the whole slot at once with a Mismatch naming who
 * issued what, so a skipped or reordered collective is a diagnosis, never a hang. When the
 * last member arrives the results are computed once and handed to everyone. A member that
 * collective that is not complete within the timeout fails every member that arrived, with the
 * list of members still missing (one watchdog timer per collective).
 */
import * as Effect from "effect/Effect"
import * as Collective from "./Collective.js"
import * as CommError from "./CommError.js"
import * as Group from "./Group.js"

/**
 * A one-shot reply to one waiting member: lighter than a Deferred on this hot path (one
 * callback, no observer list), which matters for small collectives.
 */
class Reply {
  #result: Effect.Effect<Collective.Output, CommError.CommError> | undefined
  #resume: ((e: Effect.Effect<Collective.Output, CommError.CommError>) => void) | undefined

  done(result: Effect.Effect<Collective.Output, CommError.CommError>): void {
    if (this.#result !== undefined) return
    this.#result = result
    const resume = this.#resume
    this.#resume = undefined
    resume?.(result)
  }

  readonly await: Effect.Effect<Collective.Output, CommError.CommError> = Effect.callback((resume) => {
    if (this.#result !== undefined) resume(this.#result)
    else this.#resume = resume
  })
}

interface Slot {
  readonly group: Group.Group
  readonly seq: number
  readonly contributions: Array<Collective.Contribution | undefined>
  readonly waiting: Array<Reply | undefined>
  arrived: number
  failure: ((rank: number) => CommError.CommError) | undefined
  /** The first arrival: every later arrival must agree with it. */
  first: Collective.Contribution | undefined
  /** When the first member arrived (ms, performance.now). */
  readonly created: number
  /** The op of the first arrival (for the timeout message). */
  readonly op: Collective.Op
}

/**
 * Options of a rendezvous.
 * @category models
 */
export interface RendezvousOptions {
  /** How long a member waits for the others, in ms. */
  readonly timeoutMs: number
  /** Whether members may share one output buffer where results are equal. */
  readonly share: boolean
  /** Called once per completed collective (for logs and traces). */
  readonly onComplete?: (event: { readonly group: Group.Group; readonly seq: number; readonly op: Collective.Op; readonly bytes: number; readonly micros: number }) => void
}

/**
 * The meeting place of every group of one job.
 * @category models
 */
export class Rendezvous {
  readonly options: RendezvousOptions
  #slots = new Map<string, Slot>()
  #closed: string | undefined
  #watchdog: ReturnType<typeof setInterval> | undefined

  constructor(options: RendezvousOptions) {
    this.options = options
  }

  /** Fails every waiting member and every later arrival with Closed. */
  close(why: string): void {
    this.#closed = why
    for (const slot of this.#slots.values()) {
      slot.waiting.forEach((d, i) => {
        d?.done(Effect.fail(closed(slot, slot.group.ranks[i] as number, why)))
      })
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
    const period = Math.max(1, Math.floor(this.options.timeoutMs / 4))
    this.#watchdog = setInterval(() => {
      const now = performance.now()
      for (const [key, slot] of this.#slots) {
        if (slot.failure === undefined && now - slot.created >= this.options.timeoutMs) this.#timedOut(slot)
        if (slot.failure !== undefined && slot.arrived === slot.group.ranks.length) this.#slots.delete(key)
      }
      if (this.#slots.size === 0) this.#stopWatch()
    }, period)
    this.#watchdog.unref?.()
  }

  #stopWatch(): void {
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog)
    this.#watchdog = undefined
  }

  /**
   * Member `contribution.rank` arrives at collective `seq` of `group`; returns its result once
   * everyone is there (or the failure that ended the slot).
   */
  arrive(group: Group.Group, seq: number, contribution: Collective.Contribution): Effect.Effect<Collective.Output, CommError.CommError> {
    const rank = contribution.rank
    const local = Group.localRank(group, rank)
    if (this.#closed !== undefined) {
      return Effect.fail(CommError.make({ reason: "Closed", group: Group.format(group), op: contribution.op, seq, rank, ranks: [], detail: this.#closed }))
    }
    if (local < 0) {
      return Effect.fail(CommError.make({ reason: "BadInput", group: Group.format(group), op: contribution.op, seq, rank, ranks: [rank], detail: `rank ${rank} is not a member` }))
    }
    const key = `${Group.key(group)}#${seq}`
    let slot = this.#slots.get(key)
    if (slot === undefined) {
      slot = { group, seq, contributions: new Array(group.ranks.length), waiting: new Array(group.ranks.length), arrived: 0, failure: undefined, first: undefined, created: performance.now(), op: contribution.op }
      this.#slots.set(key, slot)
      this.#watch()
    }
    const s = slot
    if (s.contributions[local] !== undefined) {
      return Effect.fail(CommError.make({ reason: "BadInput", group: Group.format(group), op: contribution.op, seq, rank, ranks: [rank], detail: "this rank arrived twice at one collective" }))
    }
    const deferred = new Reply()
    s.contributions[local] = contribution
    s.waiting[local] = deferred
    s.arrived++
    if (s.failure === undefined) {
      const own = Collective.checkOwn(contribution, group.ranks.length)
      if (own !== undefined) this.#fail(s, (r) => CommError.make({ reason: r === rank ? "BadInput" : "Mismatch", group: Group.format(group), op: contribution.op, seq, rank: r, ranks: [rank], detail: `rank ${rank}: ${own}` }))
      else this.#checkAgreement(s, contribution)
    } else {
      deferred.done(Effect.fail(s.failure(rank)))
    }
    if (s.failure === undefined && s.arrived === group.ranks.length) this.#complete(key, s)
    return deferred.await
  }

  #checkAgreement(s: Slot, c: Collective.Contribution): void {
    if (s.first === undefined) s.first = c
    if (Collective.agrees(s.first, c)) return
    const present = s.contributions.flatMap((c) => (c === undefined ? [] : [c]))
    const signatures = new Map<string, Array<number>>()
    for (const c of present) {
      const sig = Collective.signature(c)
      signatures.set(sig, [...(signatures.get(sig) ?? []), c.rank])
    }
    if (signatures.size <= 1) return
    // allToAllV and allGatherV may differ in row counts only; everything else must be equal.
    const detail = [...signatures.entries()].map(([sig, ranks]) => `rank${ranks.length > 1 ? "s" : ""} ${ranks.join(",")} issued ${sig}`).join("; ")
    const ranks = present.map((c) => c.rank)
    const op = present[0]?.op ?? "collective"
    this.#fail(s, (r) => CommError.make({ reason: "Mismatch", group: Group.format(s.group), op, seq: s.seq, rank: r, ranks, detail }))
  }

  #fail(s: Slot, failure: (rank: number) => CommError.CommError): void {
    s.failure = failure
    s.waiting.forEach((d, i) => {
      d?.done(Effect.fail(failure(s.group.ranks[i] as number)))
    })
  }

  #complete(key: string, s: Slot): void {
    const started = performance.now()
    const contributions = s.contributions as Array<Collective.Contribution>
    let outputs: Array<Collective.Output>
    try {
      outputs = Collective.compute(contributions, this.options.share)
    } catch (error) {
      this.#fail(s, (r) => CommError.make({ reason: "BadInput", group: Group.format(s.group), op: contributions[0]?.op ?? "collective", seq: s.seq, rank: r, ranks: [], detail: String(error) }))
      return
    }
    this.#slots.delete(key)
    s.waiting.forEach((d, i) => {
      d?.done(Effect.succeed(outputs[i] as Collective.Output))
    })
    const bytes = contributions.reduce((acc, c) => acc + c.data.byteLength, 0)
    this.options.onComplete?.({ group: s.group, seq: s.seq, op: contributions[0]?.op ?? "barrier", bytes, micros: (performance.now() - started) * 1000 })
  }

  #timedOut(s: Slot): void {
    if (s.failure !== undefined) return
    const op = s.op
    const arrived = s.group.ranks.filter((_, i) => s.contributions[i] !== undefined)
    const missing = s.group.ranks.filter((_, i) => s.contributions[i] === undefined)
    const timeoutMs = this.options.timeoutMs
    // Every member that arrived fails now; later arrivals fail at once instead of waiting.
    this.#fail(s, (rank) =>
      CommError.make({
        reason: "Timeout",
        group: Group.format(s.group),
        op,
        seq: s.seq,
        rank,
        ranks: missing,
        detail: `waited ${timeoutMs} ms; arrived: [${arrived.join(",")}], never arrived: [${missing.join(",")}] (a rank that skipped this collective, stopped, or is stuck before it)`,
      }),
    )
  }
}

const closed = (slot: Slot, rank: number, why: string) =>
  CommError.make({ reason: "Closed", group: Group.format(slot.group), op: slot.contributions.find((c) => c !== undefined)?.op ?? "collective", seq: slot.seq, rank, ranks: [], detail: why })
