/**
 * RankEvents: what a running rank tells its driver, on every backend.
 *
 * A rank program sees this service beside its Communicator: a logger, whether the job is
 * traced, `report` (a cloneable value for the driver: a training step's report) and `span`.
 * Each becomes a RankEvent that the backend carries to the driver while the job runs (in
 * process: a call; from a worker: a message), where `deliver` hands it on: reports to the
 * job's listener, spans to its Tracer (already on the clock all threads share), log records to
 * the rank's child of the job's logger, with the rank's coordinates.
 */
import * as Context from "effect/Context"
import { type Logger, pino } from "pino"
import type * as Folding from "../mapping/Folding.js"
import * as Log from "./Log.js"
import * as Trace from "./Trace.js"

/**
 * One event from a rank (cloneable).
 * @category models
 */
export type RankEvent =
  | { readonly _tag: "Report"; readonly value: unknown }
  /** Times in epoch ms (the clock all threads share). */
  | { readonly _tag: "Span"; readonly span: Trace.Span }
  /** One pino JSON line of the rank's logger. */
  | { readonly _tag: "Log"; readonly line: string }

/**
 * What a rank program may use to talk to its driver.
 * @category models
 */
export interface RankEventsShape {
  readonly rank: number
  /** The rank's logger (its records reach the job's logger). */
  readonly log: Logger
  /** Whether the job records spans (then `span` is worth calling). */
  readonly tracing: boolean
  /** Sends a cloneable value to the driver's `onReport`. */
  readonly report: (value: unknown) => void
  /** Records a span timed on this thread's `performance.now()`. */
  readonly span: (span: Trace.Span) => void
}

/**
 * The RankEvents service.
 * @category services
 */
export class RankEvents extends Context.Service<RankEvents, RankEventsShape>()("pleat/RankEvents") {}

/**
 * The rank side: the service of `rank`, turning everything into events for `emit`.
 * @category constructors
 */
export const make = (rank: number, options: { readonly tracing: boolean; readonly logLevel: string }, emit: (event: RankEvent) => void): RankEventsShape => ({
  rank,
  log: pino({ level: options.logLevel, base: null }, { write: (line: string) => emit({ _tag: "Log", line }) }),
  tracing: options.tracing,
  report: (value) => emit({ _tag: "Report", value }),
  span: options.tracing ? (span) => emit({ _tag: "Span", span: Trace.toSharedClock(span) }) : () => undefined,
})

/**
 * What the driver does with a job's events.
 * @category models
 */
export interface Listener {
  /** Receives every `report` of every rank, in each rank's order. */
  readonly onReport?: (rank: number, value: unknown) => void
  /** Receives every span (the job is traced when it is given). */
  readonly tracer?: Trace.Tracer
  /** The job's logger (default: none; ranks then log nothing). */
  readonly log?: Logger
  /** Each rank's coordinates for its log records, when known. */
  readonly place?: (rank: number) => Folding.RankPlace
}

/**
 * The driver side: hands each event to the listener.
 * @category constructors
 */
export const deliver = (listener: Listener): ((rank: number, event: RankEvent) => void) => {
  const loggers = new Map<number, Logger>()
  const logOf = (root: Logger, rank: number): Logger => {
    const hit = loggers.get(rank)
    if (hit !== undefined) return hit
    const made = Log.forRank(root, rank, listener.place?.(rank))
    loggers.set(rank, made)
    return made
  }
  return (rank, event) => {
    switch (event._tag) {
      case "Report":
        return listener.onReport?.(rank, event.value)
      case "Span":
        return listener.tracer?.record(event.span)
      case "Log": {
        if (listener.log === undefined) return
        const { level, msg, time: _time, ...fields } = JSON.parse(event.line) as { level: number; msg?: string; time?: number }
        const log = logOf(listener.log, rank)
        const label = log.levels.labels[level] ?? "info"
        const write = (log as unknown as Record<string, (fields: object, msg?: string) => void>)[label]
        return write?.call(log, fields, msg)
      }
    }
  }
}

/**
 * The level ranks log at: the job logger's level ("silent" without one).
 * @category getters
 */
export const levelOf = (listener: Listener): string => listener.log?.level ?? "silent"
