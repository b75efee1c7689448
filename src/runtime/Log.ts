/**
 * Log: pino loggers for jobs, one child logger per rank carrying its coordinates.
 *
 * Every record of a rank says which rank wrote it and where that rank sits in both grids
 * (tp, cp, dp, pp, etp, ep, edp), so a log of a folded job can be filtered by any group.
 * Per-collective records (op, group, seq, bytes, microseconds) are at debug level.
 */
import { type Logger, pino } from "pino"
import type * as Folding from "../mapping/Folding.js"

/**
 * Options of the job logger.
 * @category models
 */
export interface LogOptions {
  /** pino level (default "info"; "debug" shows every collective; "silent" for tests). */
  readonly level?: string
  /** Where records go (default stderr, so stdout stays for results). */
  readonly destination?: NodeJS.WritableStream
}

/**
 * The job's root logger.
 * @category constructors
 */
export const root = (options: LogOptions = {}): Logger => pino({ level: options.level ?? "info", base: { app: "pleat" } }, options.destination ?? process.stderr)

/**
 * A rank's child logger, with its coordinates when the mapping is known.
 * @category constructors
 */
export const forRank = (parent: Logger, rank: number, place?: Folding.RankPlace): Logger => parent.child(place === undefined ? { rank } : { ...place })
