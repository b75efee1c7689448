// The single-rank MoE reference for the parallel suites: every rank's tokens, routed (and
// dropped) per rank exactly as the parallel layer does, then every expert with full weights on
// one rank, in one permute / grouped experts / unpermute (the probs applied before fc2, or with
// `probsAt` "input" to each token before its expert). A LatentMoE's projections (`latent`) from
// their definition: the routed rows x Win + b_in, the combined rows x Wout + b_out.
import * as Experts from "../../src/moe/Experts.js"
import type { MoeConfig } from "../../src/moe/MoeLayer.js"
import * as Capacity from "../../src/moe/Capacity.js"
import * as Dropping from "../../src/moe/Dropping.js"
import * as Permute from "../../src/moe/Permute.js"
import * as Router from "../../src/moe/Router.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import { add, mul } from "../../src/tensor/ops/Elementwise.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import { sum } from "../../src/tensor/ops/Reduce.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import type * as Tensor from "../../src/tensor/Tensor.js"

export interface FullWeights {
  readonly router: Tensor.Tensor
  readonly wGate: Tensor.Tensor
  readonly wUp: Tensor.Tensor
  readonly wDown: Tensor.Tensor
  /** A LatentMoE's projections [H, L] and [L, H], with their biases [L] and [H] or none. */
  readonly latent?: { readonly into: Tensor.Tensor; readonly out: Tensor.Tensor; readonly bias?: { readonly into: Tensor.Tensor; readonly out: Tensor.Tensor } }
}

/** x w + b (b broadcast over the rows), or x w. */
const affine = (x: Tensor.Tensor, w: Tensor.Tensor, b: Tensor.Tensor | undefined): Tensor.Tensor => (b === undefined ? matmul(x, w) : add(matmul(x, w), b))

/** Output rows of every rank's tokens (in rank order), from full weights on one rank. */
export const referenceMoe = (tokensPerRank: ReadonlyArray<Tensor.Tensor>, w: FullWeights, config: MoeConfig): Tensor.Tensor => {
  const probs: Array<Tensor.Tensor> = []
  const masks: Array<number> = []
  for (const x of tokensPerRank) {
    const routed = Router.routing(matmul(x, w.router), config.router)
    let p = routed.probs
    let map = routed.routingMap
    if (!Capacity.isDropless(config.capacityFactor)) {
      const d = Dropping.applyTokenDropping(p, map, {
        topk: config.router.topk,
        capacityFactor: config.capacityFactor as number,
        dropPolicy: config.dropPolicy ?? "probs",
        padToCapacity: config.padToCapacity ?? false,
      })
      p = d.probs
      map = d.routingMap
    }
    probs.push(p)
    masks.push(...map.mask)
  }
  const total = tokensPerRank.reduce((n, x) => n + (x.shape[0] as number), 0)
  const map = RoutingMap.make(total, config.numExperts, masks)
  // Probs on the input (top-1): each token times its prob, the expert's output times 1.
  const onInput = config.probsAt === "input"
  const latent = w.latent
  const tokens = Shape.concat(
    tokensPerRank.map((hidden, r) => {
      const x = latent === undefined ? hidden : affine(hidden, latent.into, latent.bias?.into)
      return onInput ? mul(x, sum(probs[r] as Tensor.Tensor, 1, true)) : x
    }),
    0,
  )
  const allProbs = onInput ? RoutingMap.toTensor(map, tokens.dtype) : Shape.concat(probs, 0)
  const permuted = Permute.permute(tokens, map, allProbs)
  const y = Experts.forward(permuted.permuted, permuted.permutedProbs as Tensor.Tensor, permuted.tokensPerExpert, { wGate: w.wGate, wUp: w.wUp, wDown: w.wDown })
  const combined = Permute.unpermute(y, permuted.sortedIndices, total)
  return latent === undefined ? combined : affine(combined, latent.out, latent.bias?.out)
}
