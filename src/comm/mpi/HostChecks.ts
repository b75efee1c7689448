/**
 * HostChecks: when the signatures of a collective whose data a DataEngine moves (NCCL) are
 * judged over MPI relative to the engine's run of it. Every collective is judged, always: a
 * mismatched op, dtype, size or split fails on every member, naming group, op and ranks.
 *
 *   "first"      every collective is judged before the engine is called, so nothing reaches a
 *                GPU until the members agree (PLEAT_DISTRIBUTED_DEBUG=DETAIL, as
 *                TORCH_DISTRIBUTED_DEBUG=DETAIL checks each collective's op and sizes first).
 *   "alongside"  the fixed-size collectives (allReduce, allGather, reduceScatter, reduceScatterV,
 *                barrier: the gradients' sums, the distributed optimizer's collectives) are
 *                handed to the engine as soon as their exchange is issued, planned from this
 *                member's own signature, and their results are held until the verdict: the
 *                host's round trip runs beside NCCL's instead of before it. The others (allGatherV,
 *                allToAllV, broadcast) need the other members' sizes to plan, so they wait for the
 *                exchange either way. The NCCL backend's default. A mismatch among fixed-size
 *                collectives then fails as it does under "first", but NCCL has already been given
 *                the mismatched op (it may hang or fail; the failed job aborts its communicators).
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

/**
 * Whether a collective is handed to the engine before its verdict: a fixed-size op under
 * "alongside" checks whose own arguments are sound (else the verdict names the problem first).
 * @category guards
 */
export const handsOverEarly = (checks: HostChecks, signature: Collective.Signature, size: number): boolean =>
  checks === "alongside" && fixedSize.has(signature.op) && !Header.tooManyDims(signature.shape) && Collective.checkOwn(signature, size) === undefined

/**
 * Every member's signature as a member that plans before the verdict assumes it: its own, under
 * each member's rank (for a fixed-size op the plan needs nothing else).
 * @category constructors
 */
export const assumed = (group: Group.Group, signature: Collective.Signature): ReadonlyArray<Collective.Signature> => group.ranks.map((rank) => ({ ...signature, rank }))
