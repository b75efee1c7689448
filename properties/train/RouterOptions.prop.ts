// The router and MoE-layer options of a training run (MoeSettings): with random options (score
// function softmax, sigmoid or sqrtsoftplus, pre-softmax, group-limited routing, scaling, any set of aux losses, z-loss, either
// dispatcher, the probs applied by the experts, the combine or (top-1) the input, input jitter, expert bias, shared experts with or without their gate, LatentMoE layers), a parallel step equals one rank's in float64 within Lockstep's tolerances on
// random folded mappings (global_aux only where dp = 1, the mappings whose counts one rank
// reproduces); dropping and Sinkhorn routing too where tp = cp = 1 (each rank then holds whole
// micro-batches, so one rank drops, or balances, the same tokens); quantile balancing on any folded
// mapping (its selection gathers the micro-batch's logits over tp-cp, its beta averages over dp-cp). The per-layer losses the step reports are the ones the step loss
// holds: the first step's loss with coefficient c exceeds the one without by c times their sum
// (the losses leave the forward unchanged); dropping reports dropped pairs; the expert bias
// changes the selection only after the first global batch.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as Lockstep from "../../src/train/Lockstep.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { mappings, model, type TrainingMapping } from "./arbitraries.js"

/** Shared experts (none, or width 8 with or without their gate) and a LatentMoE's latent width (none, 8 or 40: below and above hidden 16). */
type Shared = { readonly sharedExpertFfn?: number; readonly sharedExpertGate?: boolean; readonly moeLatentSize?: number }

const job = (
  parallel: ParallelConfig.ParallelConfig,
  moe: MoeSettings.MoeSettings,
  topk: number,
  globalBatch: number,
  seed: number,
  shared: Shared = {},
): RankTrainer.TrainSetup => ({
  parallel,
  model: { ...model, topk, moe, ...shared },
  batch: { microBatch: 1, globalBatch },
  seed,
  dtype: "float64",
  optimizer: Optimizer.defaults(2),
  auxLossCoeff: moe.auxLosses.find((t) => t.type === "aux")?.coeff ?? 0,
})

const validated = (m: TrainingMapping): ParallelConfig.ParallelConfig | undefined => {
  const v = ParallelConfig.validate({ world: m.world, tp: m.tp, cp: m.cp, pp: m.pp, ep: m.ep, etp: m.etp, vpp: m.vpp, order: m.order })
  return v._tag === "Success" ? v.success : undefined
}

/** Valid settings and top-k for the 8-expert model; global_aux only when `global` allows it. */
const settings = (global: boolean, dropping: boolean) =>
  fc
    .record({
      scoreFunction: fc.constantFrom("softmax" as const, "sigmoid" as const, "sqrtsoftplus" as const),
      preSoftmax: fc.boolean(),
      topk: fc.constantFrom(1, 2, 3),
      groups: fc.constantFrom(undefined, [2, 1] as const, [4, 2] as const, [4, 4] as const),
      scalingFactor: fc.constantFrom(undefined, 2.5, 0.5),
      aux: fc.subarray(global ? (["aux", "seq_aux", "global_aux"] as const) : (["aux", "seq_aux"] as const)),
      zLossCoeff: fc.constantFrom(0, 0.01),
      dispatcher: fc.constantFrom("alltoall" as const, "allgather" as const),
      probsAt: fc.constantFrom("experts" as const, "combine" as const, "input" as const),
      capacityFactor: dropping ? fc.constantFrom(0.5, 1, 1.5) : fc.constant(undefined),
      dropPolicy: fc.constantFrom("probs" as const, "position" as const),
      padToCapacity: dropping ? fc.boolean() : fc.constant(false),
      expertBias: fc.boolean(),
      inputJitterEps: fc.constantFrom(undefined, 0.3),
      shared: fc.constantFrom<Shared>({}, { sharedExpertFfn: 8 }, { sharedExpertFfn: 8, sharedExpertGate: true }),
      latent: fc.constantFrom(undefined, undefined, 8, 40),
    })
    .map((r) => {
      const moe: MoeSettings.MoeSettings = {
        scoreFunction: r.scoreFunction,
        // Softmax after a top-1 selection trains no router (refused): pre-softmax then.
        preSoftmax: r.scoreFunction === "softmax" && (r.preSoftmax || r.topk === 1),
        numGroups: r.groups?.[0],
        groupTopk: r.groups?.[1],
        scalingFactor: r.scalingFactor,
        auxLosses: r.aux.map((type, i) => ({ type, coeff: 0.01 * (i + 1) })),
        zLossCoeff: r.zLossCoeff,
        dispatcher: r.dispatcher,
        // Probs on the input take top-1 (the others place them alike).
        probsAt: r.probsAt === "input" && r.topk !== 1 ? "experts" : r.probsAt,
        capacityFactor: r.capacityFactor,
        dropPolicy: r.dropPolicy,
        padToCapacity: r.padToCapacity,
        // A rate large enough that the bias changes which experts are picked by step 2.
        expertBias: r.expertBias && r.scoreFunction !== "softmax",
        ...(r.inputJitterEps === undefined ? {} : { inputJitterEps: r.inputJitterEps }),
        biasUpdateRate: 0.05,
      }
      return { moe, topk: r.topk, shared: r.latent === undefined ? r.shared : { ...r.shared, moeLatentSize: r.latent } }
    })
    .filter(({ moe, topk }) => {
      try {
        MoeSettings.check(moe, model.experts, topk)
        return true
      } catch {
        return false
      }
    })

const agrees = async (m: TrainingMapping, moe: MoeSettings.MoeSettings, topk: number, seed: number, shared: Shared) => {
  const parallel = validated(m)
  fc.pre(parallel !== undefined)
  if (parallel === undefined) return
  const setup = job(parallel, moe, topk, m.dp * (m.pp > 1 ? 2 * m.pp : 2), seed, shared)
  ModelConfig.check(setup.model, setup.batch, setup.parallel)
  const comparisons = await Effect.runPromise(Lockstep.run(setup, { steps: 2, timeoutMs: 20_000 }))
  const v = Lockstep.verdict(comparisons, "float64")
  expect(v.failed, `${JSON.stringify(m)} ${JSON.stringify(moe)} ${JSON.stringify(shared)} topk ${topk}, seed ${seed}: ${JSON.stringify(v)}`).toEqual([])
}

describe("router options agree with one rank (float64)", () => {
  test("random dropless options on random folded mappings", async () => {
    const cases = mappings({ minWorld: 2, maxWorld: 8, folded: true }).chain((m) => fc.tuple(fc.constant(m), settings(m.dp === 1, false), fc.integer({ min: 1, max: 1000 })))
    await fc.assert(
      fc.asyncProperty(cases, ([m, s, seed]) => agrees(m, s.moe, s.topk, seed, s.shared)),
      { numRuns: 10 },
    )
  }, 300_000)

  test("dropping (and padding) where tp = cp = 1", async () => {
    const cases = mappings({ minWorld: 2, maxWorld: 4, folded: true })
      .filter((m) => m.tp === 1 && m.cp === 1)
      .chain((m) => fc.tuple(fc.constant(m), settings(m.dp === 1, true), fc.integer({ min: 1, max: 1000 })))
    await fc.assert(
      fc.asyncProperty(cases, ([m, s, seed]) => agrees(m, s.moe, s.topk, seed, s.shared)),
      { numRuns: 4 },
    )
  }, 300_000)

  test("quantile balancing on random folded mappings (its selection sees the whole micro-batch, gathered over tp-cp)", async () => {
    const quantile = fc.record({
      topk: fc.constantFrom(1, 2, 3),
      scoreFunction: fc.constantFrom("softmax" as const, "sigmoid" as const, "sqrtsoftplus" as const),
      dispatcher: fc.constantFrom("alltoall" as const, "allgather" as const),
      probsAt: fc.constantFrom("experts" as const, "combine" as const),
      quantileBalancingEma: fc.constantFrom(undefined, 0.5),
      scalingFactor: fc.constantFrom(undefined, 2.5),
    })
    const cases = mappings({ minWorld: 2, maxWorld: 8, folded: true }).chain((m) => fc.tuple(fc.constant(m), quantile, fc.integer({ min: 1, max: 1000 })))
    await fc.assert(
      fc.asyncProperty(cases, ([m, r, seed]) => {
        const { topk, scoreFunction, ...rest } = r
        // Softmax after a top-1 selection trains no router: pre-softmax then.
        const moe: MoeSettings.MoeSettings = {
          ...MoeSettings.defaults,
          auxLosses: [],
          quantileBalancing: true,
          scoreFunction,
          preSoftmax: scoreFunction === "softmax" && topk === 1,
          ...rest,
        }
        return agrees(m, moe, topk, seed, {})
      }),
      { numRuns: 8 },
    )
  }, 300_000)

  test("Sinkhorn routing (either dispatcher, z-loss or none) where tp = cp = 1", async () => {
    const sinkhorn = fc.record({
      topk: fc.constantFrom(1, 2, 3),
      dispatcher: fc.constantFrom("alltoall" as const, "allgather" as const),
      probsAt: fc.constantFrom("experts" as const, "combine" as const),
      zLossCoeff: fc.constantFrom(0, 0.01),
    })
    const cases = mappings({ minWorld: 2, maxWorld: 4, folded: true })
      .filter((m) => m.tp === 1 && m.cp === 1)
      .chain((m) => fc.tuple(fc.constant(m), sinkhorn, fc.integer({ min: 1, max: 1000 })))
    await fc.assert(
      fc.asyncProperty(cases, ([m, r, seed]) => {
        const { topk, ...rest } = r
        const moe: MoeSettings.MoeSettings = { ...MoeSettings.defaults, auxLosses: [], sinkhorn: true, ...rest }
        return agrees(m, moe, topk, seed, {})
      }),
      { numRuns: 4 },
    )
  }, 300_000)
})

describe("the per-layer metrics", () => {
  const parallel = ParallelConfig.make({ world: 8, tp: 2, cp: 2, pp: 1, ep: 2, etp: 1 })
  // Dropping on whole micro-batches per rank (tp = cp = 1): 8 tokens, 16 routed pairs each.
  const wholeBatches = ParallelConfig.make({ world: 2, tp: 1, cp: 1, pp: 1, ep: 2, etp: 1 })
  const firstStep = (moe: MoeSettings.MoeSettings, on = parallel) => Effect.runPromise(Train.run(job(on, moe, 2, 4, 5), { steps: 1 })).then((s) => s[0] as Train.StepSummary)
  const none: MoeSettings.MoeSettings = { ...MoeSettings.defaults, auxLosses: [] }

  test("the reported aux and z losses are the ones the step loss holds", async () => {
    const base = await firstStep(none)
    expect(base.moe.every((l) => Object.keys(l.losses).length === 0)).toBe(true)
    const withLosses: MoeSettings.MoeSettings = {
      ...none,
      auxLosses: [
        { type: "aux", coeff: 0.1 },
        { type: "seq_aux", coeff: 0.2 },
      ],
      zLossCoeff: 0.05,
    }
    const s = await firstStep(withLosses)
    const coeff: Record<string, number> = { aux_loss: 0.1, seq_aux_loss: 0.2, z_loss: 0.05 }
    expect(s.moe.map((l) => l.layer)).toEqual([0, 2])
    let added = 0
    for (const l of s.moe) {
      expect(Object.keys(l.losses).sort()).toEqual(["aux_loss", "seq_aux_loss", "z_loss"])
      for (const [name, v] of Object.entries(l.losses)) added += (coeff[name] as number) * v
      // A balanced router gives about 1 for the switch losses.
      expect(l.losses.aux_loss).toBeGreaterThan(0.5)
      expect(l.losses.aux_loss).toBeLessThan(4)
    }
    expect(Math.abs(s.loss - base.loss - added)).toBeLessThan(1e-12)
  }, 120_000)

  test("dropping reports the pairs it dropped, dropless none", async () => {
    const dropless = await firstStep(none, wholeBatches)
    expect(dropless.moe.every((l) => l.dropped === 0)).toBe(true)
    const dropped = await firstStep({ ...none, capacityFactor: 0.5 }, wholeBatches)
    // Capacity 1 per expert (ceil(8 * 2 / 8 * 0.5)): at most 8 of a micro-batch's 16 pairs stay.
    const routedPerLayer = 4 * model.seq * 2
    for (const l of dropped.moe) expect(l.dropped).toBeGreaterThanOrEqual(routedPerLayer / 2)
  }, 120_000)

  test("the expert bias leaves the first step alone and moves the selection from the second", async () => {
    const sigmoid: MoeSettings.MoeSettings = { ...MoeSettings.defaults, scoreFunction: "sigmoid" }
    const run = (moe: MoeSettings.MoeSettings) => Effect.runPromise(Train.run(job(parallel, moe, 2, 4, 5), { steps: 3 })).then((xs) => xs.map((x) => x.loss))
    const plain = await run(sigmoid)
    const biased = await run({ ...sigmoid, expertBias: true, biasUpdateRate: 0.05 })
    expect(biased[0]).toBe(plain[0])
    expect(biased.slice(1)).not.toEqual(plain.slice(1))
  }, 120_000)
})
