/**
 * Experts: the local experts' SwiGLU MLPs as one grouped computation, ETP-sharded.
 *
 * Shape legend: N rows (expert-major), H hidden, F expert FFN width, L local experts,
 * X = ETP. This rank holds, for each local expert, fc1's gate and up columns of its ETP block
 * and fc2's rows of the same block:
 *   wGate, wUp [L, H, F/X]   wDown [L, F/X, H]
 * For a row x of expert e with prob p (semantics.md 2.5):
 *   a = silu(x Wg_e) * (x Wu_e);  a' = a * p  (probs before fc2);  y = a' Wd_e
 * (or the gated activation of GatedActivation's options in place of silu(.) * (.))
 * y is a partial sum over the ETP group (each member holds F/X of the hidden units); the
 * dispatcher's combine sums the partials. An expert with no rows gets zero gradients.
 *
 * With biases (Megatron's add_bias_linear, GPT-OSS's experts) each row adds its expert's fc1
 * biases (this member's F/X units) before the activation, and fc2's bias as GPT-OSS weighs it:
 * (a Wd_e + b_e) p = a' Wd_e + p b_e. fc2's bias [L, H] is held in column blocks over the ETP
 * group: each member adds its H/X columns to its partial sum alone, so the combine's sum adds
 * every column's bias exactly once and each member's gradient is its own block's.
 *
 * `recomputeActivation` (selective recompute's moe_act): the activation, the probs' weighting and
 * fc2 run again in the backward from fc1's outputs, which are kept; the activation's output and
 * the weighted rows fc2 reads are not (their F/X columns a row, twice).
 */
import { add, mul } from "../tensor/ops/Elementwise.js"
import * as GatedActivation from "../tensor/ops/GatedActivation.js"
import { gatherRows } from "../tensor/ops/Gather.js"
import { groupedMatmul } from "../tensor/ops/GroupedMatmul.js"
import { concat, reshape } from "../tensor/ops/Shape.js"
import * as Recompute from "../tensor/Recompute.js"
import * as Tensor from "../tensor/Tensor.js"

/**
 * This rank's expert weight shards.
 * @category models
 */
export interface ExpertWeights {
  readonly wGate: Tensor.Tensor
  readonly wUp: Tensor.Tensor
  readonly wDown: Tensor.Tensor
  /** The experts' biases; none: no biases. */
  readonly bias?: ExpertBiases | undefined
}

/**
 * This rank's shards of the experts' biases.
 * @category models
 */
export interface ExpertBiases {
  /** fc1's halves [L, F/X], over this member's hidden units as wGate and wUp. */
  readonly gate: Tensor.Tensor
  readonly up: Tensor.Tensor
  /** fc2's [L, H/X]: block `block` of the output's columns. */
  readonly down: Tensor.Tensor
  /** This member's place in the ETP group: which block of columns `down` holds. */
  readonly block: number
}

/**
 * The experts on expert-major rows: `rowsPerExpert[e]` consecutive rows for local expert e,
 * `probs` [N] applied before fc2, `glu` the activation (SwiGLU when absent). Returns [N, H],
 * partial over ETP.
 * @category combinators
 */
export const forward = (
  rows: Tensor.Tensor,
  probs: Tensor.Tensor | undefined,
  rowsPerExpert: ReadonlyArray<number>,
  w: ExpertWeights,
  glu?: GatedActivation.Glu,
  recomputeActivation = false,
): Tensor.Tensor => {
  const n = rows.shape[0] as number
  const b = w.bias
  const perRow = b === undefined ? undefined : expertOfRows(rowsPerExpert)
  const biased = (t: Tensor.Tensor, bias: Tensor.Tensor | undefined) => (bias === undefined || perRow === undefined ? t : add(t, gatherRows(bias, perRow)))
  const gate = biased(groupedMatmul(rows, w.wGate, rowsPerExpert), b?.gate)
  const up = biased(groupedMatmul(rows, w.wUp, rowsPerExpert), b?.up)
  const weigh = (t: Tensor.Tensor, p: Tensor.Tensor | undefined) => (p === undefined ? t : mul(t, reshape(p, [n, 1])))
  // The activation, the weighting and fc2, from fc1's outputs (and the probs).
  const down = ([g, u, p]: ReadonlyArray<Tensor.Tensor | undefined>) =>
    groupedMatmul(weigh(GatedActivation.gated(g as Tensor.Tensor, u as Tensor.Tensor, glu), p), w.wDown, rowsPerExpert)
  const inputs = probs === undefined ? [gate, up] : [gate, up, probs]
  const y = recomputeActivation ? Recompute.recompute("moe_act", inputs, down) : down(inputs)
  return b === undefined || perRow === undefined ? y : add(y, weigh(gatherRows(fullWidth(b, w.wDown.shape[2] as number), perRow), probs))
}

/** Each row's local expert: rowsPerExpert[e] rows of e, expert-major. */
const expertOfRows = (rowsPerExpert: ReadonlyArray<number>): Int32Array => {
  const out = new Int32Array(rowsPerExpert.reduce((s, r) => s + r, 0))
  let at = 0
  rowsPerExpert.forEach((r, e) => {
    out.fill(e, at, at + r)
    at += r
  })
  return out
}

/** fc2's bias block as [L, H]: zeros outside this member's columns (so only it adds them). */
const fullWidth = (b: ExpertBiases, h: number): Tensor.Tensor => {
  const [l, width] = b.down.shape as [number, number]
  if (width === h) return b.down
  const zeros = (w: number) => Tensor.zeros([l, w], { dtype: b.down.dtype, device: b.down.device })
  const before = b.block * width
  return concat([zeros(before), b.down, zeros(h - before - width)], 1)
}
