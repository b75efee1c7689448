/**
 * PipelineLinks: the typed links one pp rank's schedule moves tensors on.
 *
 * Between consecutive global stages s and s+1 there are two links: `activation s->s+1`
 * (forward) and `gradient s+1->s` (backward), from the rank holding one stage to the rank
 * holding the other. Both carry the hidden rows of a micro-batch in the model's hidden layout
 * (this rank's tokens: its cp chunk, and its tp block under sequence parallelism), in the run's
 * dtype, so a stage that sends anything else fails at the sender naming the link. Messages on
 * a link are keyed by micro-batch (Link.tag makes the communicator tag); the link names depend
 * only on stage numbers, so sender and receiver build the same link from their own schedules.
 *
 * The links are built from the rank's action list: each send and receive must name the pp
 * rank that holds the neighbouring stage (the checker proves it for schedules it accepts; a
 * list that disagrees is refused here, before any message moves).
 */
import * as Link from "../dataflow/Link.js"
import type * as TensorLayout from "../dataflow/TensorLayout.js"
import * as A from "../pipeline/Action.js"
import * as Partition from "../pipeline/Partition.js"
import type * as DType from "../tensor/DType.js"

/**
 * The links of one pp rank, by the send or receive that uses them.
 * @category models
 */
export interface PipelineLinks {
  /** The link a send or receive of this rank moves its tensor on. */
  readonly of: (action: A.Send | A.Recv) => Link.Link | undefined
  /** Every link of this rank (for reports and tests). */
  readonly all: ReadonlyArray<Link.Link>
}

/**
 * What the links are built from.
 * @category models
 */
export interface LinksInput {
  readonly stages: Partition.Stages
  /** This rank's pp index. */
  readonly pp: number
  /** The global rank of each pp index in this rank's pp group. */
  readonly ppRanks: ReadonlyArray<number>
  readonly actions: ReadonlyArray<A.Action>
  readonly dtype: DType.DType
  /** The layout of the hidden rows (activations and their gradients). */
  readonly layout: TensorLayout.TensorLayout
}

/** The two stages a send or receive connects, as (lower, upper) = (s, s+1). */
const boundaryOf = (stages: Partition.Stages, pp: number, a: A.Send | A.Recv): { readonly lower: number; readonly peer: number; readonly peerPp: number } => {
  const stage = Partition.globalStage(stages, pp, a.chunk)
  const towardsNext = a._tag === "sendForward" || a._tag === "recvBackward"
  const peer = towardsNext ? stage + 1 : stage - 1
  return { lower: Math.min(stage, peer), peer, peerPp: a._tag === "sendForward" || a._tag === "sendBackward" ? a.toPp : a.fromPp }
}

/**
 * The links of a rank's action list. Throws a RangeError naming the action when a send or
 * receive names a rank that does not hold the neighbouring stage, or leaves the pipeline.
 * @category constructors
 */
export const make = (input: LinksInput): PipelineLinks => {
  const count = Partition.stageCount(input.stages)
  const activation = new Map<number, Link.Link>()
  const gradient = new Map<number, Link.Link>()
  const rankOf = (stage: number) => {
    const pp = Partition.holder(input.stages, stage).pp
    const rank = input.ppRanks[pp]
    if (rank === undefined) throw new RangeError(`pp group has ${input.ppRanks.length} ranks, stage ${stage} is held by pp rank ${pp}`)
    return rank
  }
  const kind = { dtype: input.dtype, dims: input.layout.dims.length, layout: input.layout }
  const build = (direction: A.Direction, lower: number): Link.Link =>
    direction === "forward"
      ? Link.make(`activation ${lower}->${lower + 1}`, rankOf(lower), rankOf(lower + 1), kind)
      : Link.make(`gradient ${lower + 1}->${lower}`, rankOf(lower + 1), rankOf(lower), kind)
  for (const a of input.actions) {
    if (!A.isSend(a) && !A.isRecv(a)) continue
    const { lower, peer, peerPp } = boundaryOf(input.stages, input.pp, a)
    if (peer < 0 || peer >= count) throw new RangeError(`action ${A.format(a)} of pp rank ${input.pp}: stage ${peer} does not exist (the model has ${count} stages)`)
    const holder = Partition.holder(input.stages, peer).pp
    if (holder !== peerPp) throw new RangeError(`action ${A.format(a)} of pp rank ${input.pp}: stage ${peer} is on pp rank ${holder}, not ${peerPp}`)
    const direction = A.directionOf(a)
    const table = direction === "forward" ? activation : gradient
    if (!table.has(lower)) table.set(lower, build(direction, lower))
  }
  return {
    of: (a) => {
      const { lower } = boundaryOf(input.stages, input.pp, a)
      return (A.directionOf(a) === "forward" ? activation : gradient).get(lower)
    },
    all: [...activation.values(), ...gradient.values()],
  }
}
