// A training step on a device reads what it needs on the host without blocking the JS thread
// (issue 15): the router's logits and gradients, the loss's row statistics, the loss values, the
// shared experts' gate and the gradient norm's squares come down asynchronously, the seq_aux term
// is summed on the host where its scores are, and full recompute packs and splits on the device,
// so a step on one simulated device counts no blocking copy (`hostWaits`) for any of the router's
// modes (Sinkhorn routing, quantile balancing and sqrtsoftplus included), dispatch placements (the
// probs on the input too), loss terms, dropping, recompute modes, shared experts, LatentMoE layers and
// precisions drawn here, and trains as the host does (the same losses, bit for bit).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"

describe("a step on a device does not block on the host's reads", () => {
  test("one rank on sim: no blocking copy in any step, the host's losses bit for bit", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer({ min: 1, max: 1e6 }),
          experts: fc.constantFrom(4, 8),
          mode: fc.constantFrom("post", "pre", "sigmoid", "sigmoid-bias", "groups", "sqrtsoftplus-bias", "quantile", "sinkhorn"),
          probsAt: fc.constantFrom("experts" as const, "combine" as const, "input" as const),
          precision: fc.constantFrom("fp32" as const, "bf16" as const),
          terms: fc.constantFrom("aux", "seq_aux+z", "global_aux", "none"),
          capacityFactor: fc.constantFrom(undefined, 1, 1.5),
          recompute: fc.constantFrom("none" as const, "selective" as const, "full" as const),
          shared: fc.constantFrom("none", "mlp", "gated"),
          jitter: fc.boolean(),
          latent: fc.constantFrom(undefined, 12),
        }),
        async (c) => {
          // The self-balancing routers take no aux loss and no capacity; probs on the input, top-1.
          const balancing = c.mode === "quantile" || c.mode === "sinkhorn"
          const topk = c.probsAt === "input" ? 1 : 2
          const moe: MoeSettings.MoeSettings = {
            ...MoeSettings.defaults,
            scoreFunction: c.mode.startsWith("sigmoid") ? "sigmoid" : c.mode.startsWith("sqrtsoftplus") ? "sqrtsoftplus" : "softmax",
            preSoftmax: c.mode === "pre" || (topk === 1 && (c.mode === "post" || c.mode === "groups" || c.mode === "quantile")),
            expertBias: c.mode.endsWith("-bias"),
            probsAt: c.probsAt,
            ...(c.mode === "quantile" ? { quantileBalancing: true } : {}),
            ...(c.mode === "sinkhorn" ? { sinkhorn: true } : {}),
            ...(c.jitter ? { inputJitterEps: 0.2 } : {}),
            ...(c.mode === "groups" ? { numGroups: 2, groupTopk: 1 } : {}),
            auxLosses: balancing
              ? []
              : c.terms === "aux"
                ? [{ type: "aux", coeff: 0.01 }]
                : c.terms === "seq_aux+z"
                  ? [{ type: "seq_aux", coeff: 0.02 }]
                  : c.terms === "global_aux"
                    ? [{ type: "global_aux", coeff: 0.01 }]
                    : [],
            zLossCoeff: c.terms === "seq_aux+z" ? 0.001 : 0,
            ...(c.capacityFactor === undefined || balancing ? {} : { capacityFactor: c.capacityFactor }),
          }
          const setup: RankTrainer.TrainSetup = {
            precision: c.precision,
            parallel: ParallelConfig.make({ world: 1 }),
            model: {
              ...ModelConfig.small,
              layers: 2,
              hidden: 16,
              heads: 4,
              kvHeads: 2,
              ffn: 16,
              moeFfn: 8,
              experts: c.experts,
              topk,
              seq: 8,
              vocab: 24,
              moeEvery: 1,
              moe,
              ...(c.shared === "none" ? {} : { sharedExpertFfn: 8, sharedExpertGate: c.shared === "gated" }),
              ...(c.latent === undefined ? {} : { moeLatentSize: c.latent }),
            },
            recompute: c.recompute,
            batch: { microBatch: 1, globalBatch: 2 },
            seed: c.seed,
            dtype: "float32",
            optimizer: Optimizer.defaults(3),
            auxLossCoeff: 0.01,
          }
          const host = await Effect.runPromise(Train.run(setup, { steps: 3 }))
          const sim = await Effect.runPromise(Train.run({ ...setup, device: "sim" }, { steps: 3 }))
          expect(sim.map((s) => s.loss)).toEqual(host.map((s) => s.loss))
          expect(sim.map((s) => s.ranks[0]?.hostWaits)).toEqual([0, 0, 0])
          // The count is there to fail: the host run has no device, so no count at all.
          expect(host[0]?.ranks[0]?.hostWaits).toBeUndefined()
        },
      ),
      { numRuns: 16 },
    )
  }, 120_000)
})
