/**
 * Trace: spans of every rank (forward, backward, collectives, waiting, idle) written as a
 * Chrome / Perfetto trace, so a user sees the pipeline bubbles and the all-to-all time.
 *
 * Two clocks. Where a span is made (a rank's trainer, the tracing communicator below) it is
 * timed with `performance.now()` of the thread it runs on; each worker thread has its own
 * origin, so those times are comparable only within one thread. When a span leaves its rank
 * (RankEvents) it is moved onto the clock every thread shares, epoch milliseconds
 * (`performance.timeOrigin + performance.now()`), and that is what a Tracer holds. Spans of
 * ranks in different workers therefore line up in one trace.
 *
 * Each rank is one process row ("rank 3 (tp 1, cp 0, ...)") with two threads: compute
 * (forward, backward, wait) and communication (every collective from issue to completion).
 * Gaps between a rank's compute spans inside a step become explicit "idle" spans.
 */
import * as Effect from "effect/Effect"
import type { CommunicatorShape } from "../comm/Communicator.js"
import * as Group from "../comm/Group.js"
import * as ConfigError from "../errors/ConfigError.js"
import { SpanColumns } from "./SpanColumns.js"

/**
 * One span.
 * @category models
 */
export interface Span {
  readonly rank: number
  readonly name: string
  readonly category: "compute" | "comm" | "idle" | "step"
  /** Milliseconds: the making thread's `performance.now()`; epoch ms once in a Tracer. */
  readonly start: number
  readonly end: number
}

/**
 * A span made on this thread, moved onto the clock shared by all threads (epoch ms).
 * @category mapping
 */
export const toSharedClock = (span: Span): Span => ({
  rank: span.rank,
  name: span.name,
  category: span.category,
  start: performance.timeOrigin + span.start,
  end: performance.timeOrigin + span.end,
})

/**
 * A communicator that records a span for every collective of `rank`, from issue to
 * completion (times on this thread's clock).
 * @category constructors
 */
// once a job: a rank's communicator
export const traced = (rank: number, inner: CommunicatorShape, record: (span: Span) => void): CommunicatorShape => ({
  ...inner,
  issue: (group, request) =>
    Effect.suspend(() => {
      // From the call: issuing may itself yield (and complete) before it returns.
      const start = performance.now()
      return Effect.map(inner.issue(group, request), (pending) => ({
        await: Effect.tap(pending.await, () => Effect.sync(() => record({ rank, name: `${request.op} ${Group.format(group)}`, category: "comm", start, end: performance.now() }))),
      }))
    }),
})

/**
 * The steps a trace records, counting from 1 (`--trace-steps FIRST:LAST`, both included).
 * @category models
 */
export interface StepWindow {
  readonly first: number
  readonly last: number
}

/**
 * The window of `--trace-steps` as written (undefined when not given); a ConfigError when it is not
 * FIRST:LAST with 1 <= FIRST <= LAST, or when there is no --trace (`tracing` false).
 * @category constructors
 */
export const stepWindowOf = (text: string | undefined, tracing: boolean): StepWindow | undefined => {
  if (text === undefined) return undefined
  if (!tracing) throw ConfigError.make("trace-steps", text, "says which steps --trace records, but there is no --trace", "add --trace FILE, or drop --trace-steps")
  const match = /^(\d+):(\d+)$/.exec(text.trim())
  const [first, last] = match === null ? [Number.NaN, Number.NaN] : [Number(match[1]), Number(match[2])]
  if (!(Number.isSafeInteger(first) && Number.isSafeInteger(last) && first >= 1 && first <= last))
    throw ConfigError.make("trace-steps", text, "is not a window of steps FIRST:LAST (whole numbers, 1 <= FIRST <= LAST)", "write --trace-steps FIRST:LAST, such as 10:12")
  return { first, last }
}

/**
 * Collects the spans of every rank of a job (on the shared clock).
 * @category models
 */
export class Tracer {
  /** The spans kept, in columns (SpanColumns: ~25 bytes a span). */
  readonly #kept = new SpanColumns()
  /** When the tracer was made (epoch ms); the trace starts here or at its first span. */
  readonly origin = performance.timeOrigin + performance.now()
  /** Per rank, the spans of the step under way, until its step span says whether it is kept. */
  readonly #pending = new Map<number, Array<Span>>()

  /** The steps kept (`--trace-steps`), every one when undefined. */
  readonly steps: StepWindow | undefined

  constructor(steps?: StepWindow) {
    this.steps = steps
  }

  /**
   * Adds a span timed on the shared clock (epoch ms). With a step window, a rank's spans wait for
   * its step's span (`step K`, K from 1 as the progress counts, made when the step ends) and are
   * kept with it when K lies in the window, else dropped: a long run's trace holds only the window.
   */
  /** The spans kept, as objects (a copy). */
  get spans(): Array<Span> {
    return this.#kept.toArray()
  }

  record(span: Span): void {
    if (this.steps === undefined) {
      this.#kept.push(span)
      return
    }
    const pending = this.#pending.get(span.rank) ?? []
    if (span.category !== "step") {
      pending.push(span)
      this.#pending.set(span.rank, pending)
      return
    }
    const shown = Number(span.name.slice("step ".length))
    if (shown >= this.steps.first && shown <= this.steps.last) {
      for (const s of pending) this.#kept.push(s)
      this.#kept.push(span)
    }
    this.#pending.set(span.rank, [])
  }

  /** The trace as Chrome trace-event JSON, with idle spans filling the gaps between compute. */
  toChrome(labels: (rank: number) => string): { traceEvents: Array<Record<string, unknown>>; displayTimeUnit: string } {
    return { traceEvents: [...this.chromeEvents(labels)], displayTimeUnit: "ms" }
  }

  /**
   * `JSON.stringify(toChrome(labels))` in pieces of about `pieceChars` characters: a long run's
   * trace is past V8's largest string (~512 MB: ~17,500 rank-steps of the default model), where
   * one string ended a finished run with "Invalid string length".
   */
  *chromeJson(labels: (rank: number) => string, pieceChars = 1 << 20): Generator<string> {
    let piece = '{"traceEvents":['
    let first = true
    for (const event of this.chromeEvents(labels)) {
      piece += (first ? "" : ",") + JSON.stringify(event)
      first = false
      if (piece.length >= pieceChars) {
        yield piece
        piece = ""
      }
    }
    yield `${piece}],"displayTimeUnit":"ms"}`
  }

  /**
   * The events of the trace, rank by rank: its rows' names, its spans, then the idle spans of each
   * step (the step's time on the compute row covered by no compute span inside it). Linear in the
   * spans but for sorting: the spans are grouped by rank once and each step finds its compute spans
   * by binary search (a filter of every span a rank and a step made a 1,000-step trace quadratic).
   */
  *chromeEvents(labels: (rank: number) => string): Generator<Record<string, unknown>> {
    const kept = this.#kept
    let origin = this.origin
    for (let i = 0; i < kept.length; i++) origin = Math.min(origin, kept.startAt(i))
    const us = (ms: number) => Math.round((ms - origin) * 1000)
    for (const { rank, indices } of kept.byRank()) {
      yield { name: "process_name", ph: "M", pid: rank, args: { name: labels(rank) } }
      yield { name: "thread_name", ph: "M", pid: rank, tid: 0, args: { name: "compute" } }
      yield { name: "thread_name", ph: "M", pid: rank, tid: 1, args: { name: "communication" } }
      const compute: Array<Span> = []
      const steps: Array<Span> = []
      for (const i of indices) {
        const s = kept.at(i)
        yield { name: s.name, cat: s.category, ph: "X", ts: us(s.start), dur: Math.max(0, us(s.end) - us(s.start)), pid: rank, tid: s.category === "comm" ? 1 : 0 }
        if (s.category === "compute") compute.push(s)
        else if (s.category === "step") steps.push(s)
      }
      // Compute spans by start (stable: equal starts keep their order).
      compute.sort((a, b) => a.start - b.start)
      for (const step of steps) {
        let cursor = step.start
        for (let k = firstStartingAt(compute, step.start); k < compute.length && (compute[k] as Span).start <= step.end; k++) {
          const s = compute[k] as Span
          if (s.end > step.end) continue
          if (s.start - cursor > 0.01) yield { name: "idle", cat: "idle", ph: "X", ts: us(cursor), dur: us(s.start) - us(cursor), pid: rank, tid: 0 }
          cursor = Math.max(cursor, s.end)
        }
        if (step.end - cursor > 0.01) yield { name: "idle", cat: "idle", ph: "X", ts: us(cursor), dur: us(step.end) - us(cursor), pid: rank, tid: 0 }
      }
    }
  }
}

/** The index of the first of `sorted` (by start) that starts at or after `at`. */
const firstStartingAt = (sorted: ReadonlyArray<Span>, at: number): number => {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((sorted[mid] as Span).start < at) lo = mid + 1
    else hi = mid
  }
  return lo
}
