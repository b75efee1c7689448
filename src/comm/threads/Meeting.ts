/**
 * Meeting: the rules of the rendezvous (src/comm/Rendezvous.ts) applied to a group's control
 * block by its members themselves. Every rule reads signatures only, and each failure is
 * decided once for the whole slot (ControlBlock.decide), so every member reports the same
 * diagnosis as on any other backend:
 *   - a member whose own arguments cannot work fails the slot as it arrives (BadInput for it,
 *     Mismatch for the others), and one whose signature disagrees with a member already there
 *     fails it with a Mismatch naming who issued what (a skipped or reordered collective is a
 *     diagnosis at once, never a hang);
 *   - once all have arrived, Verdict.judge (own arguments, agreement, receive buffers);
 *   - a member that waited past the timeout fails the slot with a Timeout naming the ranks that
 *     arrived and those still missing.
 */
import * as Collective from "../Collective.js"
import * as CommError from "../CommError.js"
import * as Group from "../Group.js"
import * as Verdict from "../Verdict.js"
import type { ControlBlock, FailureRecord } from "./ControlBlock.js"

/** The signatures of the members that have arrived at `seq`, in group-local order. */
const present = (block: ControlBlock, group: Group.Group, seq: number): Array<Collective.Signature> =>
  group.ranks.flatMap((rank, j) => (block.issued(j) > seq ? [block.signature(seq, j, rank)] : []))

/** A record where every member reports `reason` except `culprit` (group-local), which reports `own`. */
const record = (n: number, reason: CommError.Reason, fields: Omit<FailureRecord, "reasons">, culprit = -1, own: CommError.Reason = reason): FailureRecord => ({
  reasons: Array.from({ length: n }, (_, j) => (j === culprit ? own : reason)),
  ...fields,
})

/**
 * A member whose own arguments cannot work fails the slot before it publishes (so nobody can
 * find everyone there and decide ok first): BadInput for it, Mismatch for the others.
 * @category guards
 */
export const ownProblem = (group: Group.Group, me: number, mine: Collective.Signature): FailureRecord | undefined => {
  const n = group.ranks.length
  const own = Collective.checkOwn(mine, n)
  return own === undefined ? undefined : record(n, "Mismatch", { op: mine.op, ranks: [mine.rank], detail: `rank ${mine.rank}: ${own}` }, me, "BadInput")
}

/**
 * What member `me` (group-local) finds once it has published at `seq`: a Mismatch to decide if
 * a member already there disagrees, or undefined. Of two members that publish at once, at
 * least one sees the other (both store, then load: Atomics are sequentially consistent).
 * @category guards
 */
export const onArrival = (block: ControlBlock, group: Group.Group, seq: number, me: number): FailureRecord | undefined => {
  for (let j = 0; j < block.n; j++) {
    if (j === me || block.issued(j) <= seq || block.agrees(seq, me, j)) continue
    const here = present(block, group, seq)
    const detail = Verdict.mismatch(here)
    if (detail === undefined) return undefined
    return record(group.ranks.length, "Mismatch", { op: here[0]?.op ?? "collective", ranks: here.map((p) => p.rank), detail })
  }
  return undefined
}

/**
 * Whether every member has arrived at `seq`.
 * @category guards
 */
export const allArrived = (block: ControlBlock, seq: number): boolean => {
  for (let j = 0; j < block.n; j++) if (block.issued(j) <= seq) return false
  return true
}

/**
 * The verdict once every member has arrived: a failure to decide, or undefined (ok).
 * @category guards
 */
export const verdict = (block: ControlBlock, group: Group.Group, seq: number): FailureRecord | undefined => {
  // Every member checked its own arguments before publishing: when all agree and nobody gave a
  // receive buffer, nothing is left to judge.
  let plain = true
  for (let j = 0; j < block.n && plain; j++) plain = block.agrees(seq, 0, j) && block.receiveBuffer(seq, j) === undefined
  if (plain) return undefined
  const parts = group.ranks.map((rank, j) => block.signature(seq, j, rank))
  const judged = Verdict.judge(
    group,
    seq,
    parts,
    parts.map((_, j) => block.receiveBuffer(seq, j)),
  )
  if (judged === undefined) return undefined
  const errors = group.ranks.map((rank) => judged(rank))
  const first = errors[0] as CommError.CommError
  return { reasons: errors.map((e) => e.reason), op: first.op, ranks: [...first.ranks], detail: first.detail }
}

/**
 * The Timeout of `seq`, as seen by a member that waited `timeoutMs`.
 * @category constructors
 */
export const timedOut = (block: ControlBlock, group: Group.Group, seq: number, op: Collective.Op, timeoutMs: number): FailureRecord => {
  const arrived = group.ranks.filter((_, j) => block.issued(j) > seq)
  const missing = group.ranks.filter((_, j) => block.issued(j) <= seq)
  return record(group.ranks.length, "Timeout", {
    op,
    ranks: missing,
    detail: `waited ${timeoutMs} ms; arrived: [${arrived.join(",")}], never arrived: [${missing.join(",")}] (a rank that skipped this collective, stopped, or is stuck before it)`,
  })
}

/**
 * The error member `me` (group-local) reports for a decided failure.
 * @category constructors
 */
export const errorOf = (f: FailureRecord, group: Group.Group, seq: number, me: number): CommError.CommError =>
  CommError.make({ reason: f.reasons[me] ?? "Mismatch", group: Group.format(group), op: f.op, seq, rank: group.ranks[me] as number, ranks: f.ranks, detail: f.detail })
