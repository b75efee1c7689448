/**
 * Simulate: when each compute of a schedule would run, and how much of the pipeline idles.
 *
 * The bubble is the price of pipelining: stages wait for the first activations to arrive and for
 * the last gradients to drain. The theory (Megatron's interleaving paper) puts it at
 *
 *   bubbleFraction(P, V, M) = (P - 1) / (V*M + P - 1)
 *
 * of the run, when a chunk's forward and backward take 1/V of a full stage's. `simulate` measures
 * it on an actual action list: every rank starts at time 0 and runs its actions in order; a
 * compute takes forwardTime or backwardTime; a send is free and its message is available at once
 * (latency 0); a receive waits until the message has been sent. The measured bubble is the idle
 * share of P ranks over the whole run: 1 - busy / (P * makespan).
 */
import * as Result from "effect/Result"
import type { Compute } from "./Action.js"
import * as Check from "./Check.js"

/**
 * Durations of one compute action.
 * @category models
 */
export interface Times {
  readonly forwardTime: number
  readonly backwardTime: number
}

/**
 * One compute action on a rank's timeline.
 * @category models
 */
export interface Span {
  readonly action: Compute
  readonly start: number
  readonly end: number
}

/**
 * The simulated run.
 * @category models
 */
export interface Timeline {
  /** Per pp rank, its compute actions in order with start and end times. */
  readonly ranks: ReadonlyArray<ReadonlyArray<Span>>
  /** The end of the last compute on any rank. */
  readonly makespan: number
  /** Per pp rank, the total compute time. */
  readonly busy: ReadonlyArray<number>
  /** The idle fraction 1 - sum(busy) / (P * makespan) (0 for an empty run). */
  readonly bubble: number
}

/**
 * The theoretical bubble fraction (P - 1) / (V*M + P - 1).
 * @category formulas
 */
export const bubbleFraction = (pp: number, vpp: number, microBatches: number): number => (pp - 1) / (vpp * microBatches + pp - 1)

/**
 * Times a schedule. Fails with the checker's diagnosis when the schedule cannot run; throws a
 * RangeError for negative or non-finite times.
 * @category simulation
 */
export const simulate = (schedule: Check.CheckInput, times: Times): Result.Result<Timeline, Check.CheckError> => {
  for (const [name, t] of Object.entries(times)) {
    if (!Number.isFinite(t) || t < 0) throw new RangeError(`${name} must be a finite time >= 0, got ${t}`)
  }
  return Result.map(Check.check(schedule, { backwardOrder: "any" }), () => run(schedule, times))
}

/** Runs a schedule that passed the checker: every receive finds its message eventually. */
const run = (schedule: Check.CheckInput, times: Times): Timeline => {
  const P = schedule.ranks.length
  const links = new Map<string, { readonly sentAt: Array<number>; head: number }>()
  const link = (from: number, to: number, dir: string) => {
    const key = `${from}>${to}:${dir}`
    let q = links.get(key)
    if (q === undefined) links.set(key, (q = { sentAt: [], head: 0 }))
    return q
  }
  const clock = new Array<number>(P).fill(0)
  const pc = new Array<number>(P).fill(0)
  const spans: Array<Array<Span>> = Array.from({ length: P }, () => [])
  let progress = true
  while (progress) {
    progress = false
    for (let p = 0; p < P; p++) {
      const actions = schedule.ranks[p]!
      while (pc[p]! < actions.length) {
        const a = actions[pc[p]!]!
        const now = clock[p]!
        if (a._tag === "forward" || a._tag === "backward") {
          const end = now + (a._tag === "forward" ? times.forwardTime : times.backwardTime)
          spans[p]!.push({ action: a, start: now, end })
          clock[p] = end
        } else if (a._tag === "sendForward" || a._tag === "sendBackward") {
          link(p, a.toPp, a._tag === "sendForward" ? "f" : "b").sentAt.push(now)
        } else {
          const q = link(a.fromPp, p, a._tag === "recvForward" ? "f" : "b")
          const sentAt = q.sentAt[q.head]
          if (sentAt === undefined) break
          q.head++
          clock[p] = Math.max(now, sentAt)
        }
        pc[p] = pc[p]! + 1
        progress = true
      }
    }
  }
  const busy = spans.map((s) => s.reduce((acc, x) => acc + (x.end - x.start), 0))
  const makespan = Math.max(0, ...spans.map((s) => s[s.length - 1]?.end ?? 0))
  const total = busy.reduce((a, b) => a + b, 0)
  return { ranks: spans, makespan, busy, bubble: makespan === 0 ? 0 : 1 - total / (P * makespan) }
}
