/**
 * CommError: why a collective or a p2p transfer did not complete.
 *
 * Every error names the group, the op, the collective's sequence number on that group and the
 * ranks involved, because "NCCL timeout" with no more words is what users of other systems get
 * (see users.md). Reasons:
 *   Timeout   some members never arrived within the timeout (named: arrived vs missing)
 *   Mismatch  members issued different ops, dtypes or sizes as the same collective
 *   BadInput  a rank's own arguments cannot work (not a member, split sizes that do not add up)
 *   Closed    the fabric shut down (the job ended) while the op waited
 */
import * as Data from "effect/Data"
import * as ConfigError from "../errors/ConfigError.js"

/**
 * The reason a communication failed.
 * @category models
 */
export type Reason = "Timeout" | "Mismatch" | "BadInput" | "Closed"

/**
 * What a CommError says: plain data, so it can cross threads or processes and be rebuilt.
 * @category models
 */
export interface Fields {
  readonly reason: Reason
  /** The group as `name [ranks]`, or `p2p a->b`. */
  readonly group: string
  readonly op: string
  /** The collective's sequence number on the group (p2p: the message index), -1 if none. */
  readonly seq: number
  /** The rank that reports the error. */
  readonly rank: number
  /** The ranks the diagnosis points at (missing, disagreeing, ...). */
  readonly ranks: ReadonlyArray<number>
  readonly detail: string
  /**
   * The user's configuration error that broke the op, when it threw one while it ran (a result
   * buffer the machine's memory could not hold: tensor/MemoryHeadroom.ts), so that the command
   * line still reports it as such (one line, exit 2).
   */
  readonly config?: ConfigError.Fields
}

/**
 * A failed collective or transfer.
 * @category errors
 */
export class CommError extends Data.TaggedError("CommError")<Fields> {
  override get message(): string {
    // A configuration error reads as itself wherever it struck (group, op and seq stay in the fields).
    if (this.config !== undefined) return ConfigError.fromFields(this.config).message
    const seq = this.seq >= 0 ? ` #${this.seq}` : ""
    return `${this.reason}: ${this.op}${seq} on ${this.group} (seen by rank ${this.rank}): ${this.detail}`
  }
}

/**
 * Builds a CommError.
 * @category constructors
 */
export const make = (fields: Fields): CommError => new CommError(fields)

/**
 * The fields of an error, as plain data.
 * @category mapping
 */
export const fields = (e: CommError): Fields =>
  e.config === undefined
    ? { reason: e.reason, group: e.group, op: e.op, seq: e.seq, rank: e.rank, ranks: [...e.ranks], detail: e.detail }
    : { reason: e.reason, group: e.group, op: e.op, seq: e.seq, rank: e.rank, ranks: [...e.ranks], detail: e.detail, config: e.config }

/**
 * A BadInput for what an op threw while it ran (its text as the detail; a ConfigError is kept as
 * `config`).
 * @category constructors
 */
export const thrown = (where: Pick<Fields, "group" | "op" | "seq" | "rank" | "ranks">, error: unknown): CommError => {
  const { group, op, seq, rank, ranks } = where
  return ConfigError.isConfigError(error)
    ? make({ reason: "BadInput", group, op, seq, rank, ranks, detail: String(error), config: ConfigError.fieldsOf(error) })
    : make({ reason: "BadInput", group, op, seq, rank, ranks, detail: String(error) })
}

/**
 * The same failure reported for another collective of the group (a broken stream fails every op
 * queued behind the one that broke it).
 * @category constructors
 */
export const forOp = (e: CommError, seq: number, op: string): CommError => {
  const { reason, group, rank, detail, config } = e
  return make(config === undefined ? { reason, group, op, seq, rank, ranks: [...e.ranks], detail } : { reason, group, op, seq, rank, ranks: [...e.ranks], detail, config })
}
