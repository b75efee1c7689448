/**
 * Dispatcher: the groups and sizes a token dispatcher needs, shared by both dispatchers.
 *
 * The MoE layer runs on the expert grid: experts are split over ep (L = E / EP local experts
 * per ep rank: global expert ep*L + l), each expert's hidden units over etp, and tokens meet in
 * the etp-ep group, whose group-local rank is etp + ETP*ep (the mapping guarantees it).
 */
import type { Group } from "../comm/Group.js"
import type * as TensorLayout from "../dataflow/TensorLayout.js"
import * as ConfigError from "../errors/ConfigError.js"
import * as StorageRecycler from "../tensor/StorageRecycler.js"
import type * as Tensor from "../tensor/Tensor.js"
import type * as DispatchPlan from "./DispatchPlan.js"
import type * as GatedActivation from "../tensor/ops/GatedActivation.js"
import type * as Experts from "./Experts.js"
import type * as RoutingMap from "./RoutingMap.js"

/**
 * The expert-grid groups of this rank.
 * @category models
 */
export interface ExpertGroups {
  readonly ep: Group
  readonly etp: Group
  readonly etpEp: Group
}

/**
 * What a dispatcher is given for one forward.
 * @category models
 */
export interface DispatchInput {
  /** [T, H] this rank's tokens. */
  readonly tokens: Tensor.Tensor
  /** The layout the tokens are in (default whole rows, RoutedLayout.plain); the output's too. */
  readonly layout?: TensorLayout.TensorLayout
  /** [T, E] probs, 0 off the routing map. */
  readonly probs: Tensor.Tensor
  readonly map: RoutingMap.RoutingMap
  readonly numExperts: number
  readonly experts: Experts.ExpertWeights
  /** The experts' gated activation (SwiGLU when absent). */
  readonly glu?: GatedActivation.Glu | undefined
  readonly groups: ExpertGroups
  /**
   * What runs on the expert-major rows instead of the SwiGLU experts (tests use an identity
   * expert: dispatch then combine must give every token back times its probs). Its probs are
   * the rows' own, or undefined where the combine applies them (`probsAt`).
   */
  readonly compute?: (rows: Tensor.Tensor, probs: Tensor.Tensor | undefined, rowsPerExpert: ReadonlyArray<number>) => Tensor.Tensor
  /**
   * Whether `compute` may keep a reference to the rows it is given after it returns, or return
   * storage that something else holds (default true for a `compute` of the caller's, false for
   * the built-in experts). When it does neither and no tape records the rows, the dispatchers
   * hand the rows and `compute`'s output back to the storage recycler once the combine has
   * summed them (recycleExpertRows): forward-only runs then reuse that memory step after step.
   */
  readonly computeRetains?: boolean
  /**
   * Where the probs weight the experts' outputs: "experts" (the default, Megatron-Core's
   * current rule: the activation times the prob before fc2, semantics.md 2.5) or "combine"
   * (its earlier one, an unpermute with probs: each returned row times its token's prob as it is
   * summed onto the token, the multiply fused with the combine's sum, and the experts run without
   * probs). The same output in exact arithmetic (fc2 is linear and has no bias); the roundings
   * differ, so a run keeps one rule.
   */
  readonly probsAt?: ProbsAt
}

/**
 * Where a dispatcher applies the probs (DispatchInput.probsAt).
 * @category models
 */
export type ProbsAt = "experts" | "combine"

/**
 * What a dispatcher learned, for logs and tests (immutable).
 * @category models
 */
export interface DispatchReport {
  /** Rows each local expert processed on this rank. */
  readonly rowsPerLocalExpert: ReadonlyArray<number>
  readonly plan: DispatchPlan.DispatchPlan
}

/**
 * Local experts per ep rank, checked.
 * @category mapping
 */
export const localExperts = (numExperts: number, ep: number): number => {
  if (numExperts % ep !== 0) throw ConfigError.make("experts", numExperts, `is not divisible by ep = ${ep}`, `use a multiple of ${ep} experts or a smaller ep`)
  return numExperts / ep
}

/**
 * Off the tape, the rows a dispatcher's experts ran on and the experts' output are dead once
 * the combine has summed them, unless `compute` retains them (the built-in experts save nothing
 * without a tape): hands both back to the storage recycler, whose next requests reuse their
 * memory (tensor/StorageRecycler.ts declines tensors on a tape and storage it did not make).
 * `rows` must be the dispatcher's own (never an allgather's result, which a zero-copy transport
 * shares) and nothing of the dispatcher's may read either afterwards.
 * @category mutations
 */
export const recycleExpertRows = (input: DispatchInput, rows: Tensor.Tensor, output: Tensor.Tensor): void => {
  if (input.computeRetains ?? input.compute !== undefined) return
  if (output.hostStorage !== rows.hostStorage) StorageRecycler.recycleTensor(output)
  StorageRecycler.recycleTensor(rows)
}
