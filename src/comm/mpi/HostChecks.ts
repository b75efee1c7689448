/**
 * HostChecks: when the signatures of a collective whose data a DataEngine moves (NCCL) are
 * judged over MPI relative to the engine's run of it. Every collective is judged, always: a
 * mismatched op, dtype, size or split fails on every member, naming group, op and ranks.
 *
 *   "first"      every collective is judged before the engine is called, so nothing reaches a
 *                GPU until the members agree (PLEAT_DISTRIBUTED_DEBUG=DETAIL, as
 *                TORCH_DISTRIBUTED_DEBUG=DETAIL checks each collective's op and sizes first).
 *   "alongside"  the fixed-size collectives (allReduce, allGather, reduceScatter, reduceScatterV,
 *                barrier: the gradients' sums, the distributed optimizer's collectives) and the
 *                all-to-alls whose members say what they receive (recvSplits: the MoE exchanges)
 *                are handed to the engine as soon as their exchange is issued, planned from this
 *                member's own signature, and their results are held until the verdict: the
 *                host's round trip runs beside NCCL's instead of before it. The others
 *                (allGatherV, broadcast, a plain allToAllV) need the other members' sizes to plan,
 *                so they wait for the exchange either way. The NCCL backend's default. A mismatch
 *                then fails as it does under "first", but NCCL has already been given the
 *                mismatched op (it may hang or fail; the failed job aborts its communicators).
 * A member's own malformed request is judged first under both (its plan could not be made).
 */
import * as Collective from "../Collective.js"
import type * as Group from "../Group.js"
import * as Header from "./Header.js"

/**
 * When the host judges an engine's collectives (see the file header).
 * @category models
 */
export type HostChecks = "first" | "alongside"

const fixedSize: ReadonlySet<Collective.Op> = new Set<Collective.Op>(["allReduce", "allGather", "reduceScatter", "reduceScatterV", "barrier"])

/** An allToAllV of one chunk whose member says what it receives from each member (recvSplits). */
const knowsItsReceives = (s: Collective.Signature, size: number): boolean =>
  s.op === "allToAllV" && (s.chunks ?? 1) === 1 && s.combine === undefined && s.recvSplits?.length === size && s.recvSplits.every((r) => Number.isInteger(r) && r >= 0)

/**
 * Whether a collective is handed to the engine before its verdict: under "alongside" checks, a
 * fixed-size op, or an all-to-all whose member gave its receive sizes (the MoE exchanges,
 * lowered by ChunkedLowering), whose own arguments are sound (else the verdict names the
 * problem first).
 * @category guards
 */
export const handsOverEarly = (checks: HostChecks, signature: Collective.Signature, size: number): boolean =>
  checks === "alongside" &&
  (fixedSize.has(signature.op) || knowsItsReceives(signature, size)) &&
  !Header.tooManyDims(signature.shape) &&
  Collective.checkOwn(signature, size) === undefined

/**
 * Every member's signature as member `local` assumes it when it plans before the verdict: its
 * own under each member's rank, and for an all-to-all each member sending it the rows its
 * recvSplits expect (a member's plan reads nothing else of the others').
 * @category constructors
 */
export const assumed = (group: Group.Group, signature: Collective.Signature, local: number): ReadonlyArray<Collective.Signature> =>
  group.ranks.map((rank, p) => {
    const received = signature.recvSplits
    // Object.assign keeps one hidden class where `{ ...signature, rank }` makes one a call (scripts/check-spreads.mjs).
    if (signature.op !== "allToAllV" || received === undefined || p === local) return Object.assign({}, signature, { rank })
    return Object.assign({}, signature, { rank, sendSplits: group.ranks.map((_, q) => (q === local ? (received[p] as number) : 0)) })
  })

/**
 * Why the members' signatures contradict what `mine` (member `local`'s own) said it receives:
 * its recvSplits against each member's sendSplits to it; the sender and the detail, or
 * undefined when they agree or it said nothing.
 * @category guards
 */
export const receivesProblem = (
  mine: Collective.Signature,
  parts: ReadonlyArray<Collective.Signature>,
  local: number,
): { readonly from: number; readonly detail: string } | undefined => {
  const expected = mine.recvSplits
  if (mine.op !== "allToAllV" || (mine.chunks ?? 1) !== 1 || expected === undefined) return undefined
  for (let p = 0; p < parts.length; p++) {
    const other = parts[p] as Collective.Signature
    const sent = other.sendSplits?.[local]
    if (sent !== expected[p])
      return { from: other.rank, detail: `rank ${mine.rank} expects ${expected[p]} rows from rank ${other.rank} (its recvSplits) but rank ${other.rank} sends it ${sent}` }
  }
  return undefined
}
