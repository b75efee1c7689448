/**
 * HostChecks: which collectives of a job whose data a DataEngine moves (NCCL) have their
 * signatures exchanged and judged over MPI before the engine is called.
 *
 *   "all"       every collective (the MPI transport's own rule): a mismatched op, dtype, size or
 *               split fails on every member at once, naming group, op and ranks, before
 *               anything is queued on a GPU. PLEAT_DISTRIBUTED_DEBUG=DETAIL, as
 *               TORCH_DISTRIBUTED_DEBUG=DETAIL checks every collective's op and sizes on the host.
 *   "variable"  only the collectives whose sizes the members learn from each other there
 *               (allGatherV, allToAllV, broadcast: their receive sizes are the others' send
 *               sizes, as an NCCL user exchanges counts first); the fixed-size ones (allReduce,
 *               allGather, reduceScatter, reduceScatterV, barrier) go straight to the engine,
 *               planned from this member's own signature. The NCCL backend's default: one MPI
 *               round trip less per gradient sum. A member's own malformed request still fails
 *               at once (on that member); a mismatch between members is not seen on the host:
 *               NCCL then hangs until the watchdog's Timeout names who never completed, or
 *               returns an error, as NCCL does for PyTorch.
 */
import * as Collective from "../Collective.js"
import type * as Group from "../Group.js"
import * as Header from "./Header.js"

/**
 * Which collectives are judged on the host first (see the file header).
 * @category models
 */
export type HostChecks = "all" | "variable"

const fixedSize: ReadonlySet<Collective.Op> = new Set<Collective.Op>(["allReduce", "allGather", "reduceScatter", "reduceScatterV", "barrier"])

/**
 * Whether a collective goes to the engine without the signatures' exchange: a fixed-size op
 * under "variable" checks, whose own arguments are sound (else the judged path names the
 * problem on every member).
 * @category guards
 */
export const skipsExchange = (checks: HostChecks, signature: Collective.Signature, size: number): boolean =>
  checks === "variable" && fixedSize.has(signature.op) && !Header.tooManyDims(signature.shape) && Collective.checkOwn(signature, size) === undefined

/**
 * Every member's signature as a member that skipped the exchange assumes it: its own, under
 * each member's rank (for a fixed-size op the plan needs nothing else).
 * @category constructors
 */
export const assumed = (group: Group.Group, signature: Collective.Signature): ReadonlyArray<Collective.Signature> => group.ranks.map((rank) => ({ ...signature, rank }))
