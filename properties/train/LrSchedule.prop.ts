// The learning-rate schedule against Megatron-Core's OptimizerParamScheduler.get_lr, written out
// here in its own terms (num_steps, lr_warmup_steps, lr_decay_steps, wsd_decay_steps) for every
// decay style, on random settings: pleat's step k after the warm-up is Megatron's num_steps = k
// (pleat's warm-up reaches the peak one step earlier: (k + 1) / W). And the shape's promises:
// within [min, peak], never rising after the warm-up, min from the decay's end on.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as LrSchedule from "../../src/train/LrSchedule.js"

/** Megatron-Core's get_lr after the warm-up (init_lr 0), as its source reads. */
const megatron = (o: {
  maxLr: number
  minLr: number
  warmupSteps: number
  decaySteps: number
  style: string
  wsdDecaySteps: number
  wsdStyle: string
  numSteps: number
}): number => {
  if (o.style === "constant") return o.maxLr
  if (o.numSteps > o.decaySteps) return o.minLr
  if (o.style === "inverse-square-root") {
    const warmup = Math.max(o.warmupSteps, 1)
    const n = Math.max(o.numSteps, 1)
    return Math.max(o.minLr, (o.maxLr * warmup ** 0.5) / n ** 0.5)
  }
  const decayRatio = (o.numSteps - o.warmupSteps) / (o.decaySteps - o.warmupSteps)
  const delta = o.maxLr - o.minLr
  let coeff: number
  if (o.style === "linear") coeff = 1 - decayRatio
  else if (o.style === "cosine") coeff = 0.5 * (Math.cos(Math.PI * decayRatio) + 1)
  else {
    const annealStart = o.decaySteps - o.wsdDecaySteps
    if (o.numSteps <= annealStart) coeff = 1
    else {
      const r = (o.numSteps - annealStart) / o.wsdDecaySteps
      coeff = o.wsdStyle === "linear" ? 1 - r : o.wsdStyle === "cosine" ? 0.5 * (Math.cos(Math.PI * r) + 1) : o.wsdStyle === "exponential" ? 2 * 0.5 ** r - 1 : 1 - Math.sqrt(r)
    }
  }
  return o.minLr + coeff * delta
}

const settings = fc
  .record({
    lr: fc.double({ min: 1e-5, max: 1, noNaN: true }),
    minFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    warmup: fc.integer({ min: 0, max: 20 }),
    decayAfterWarmup: fc.integer({ min: 1, max: 200 }),
    steps: fc.integer({ min: 1, max: 300 }),
    decayStyle: fc.constantFrom(...LrSchedule.decayStyles),
    wsdFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    wsdDecayStyle: fc.constantFrom(...LrSchedule.wsdDecayStyles),
    fixedDecay: fc.boolean(),
  })
  .map((r) => {
    const decaySteps = r.warmup + r.decayAfterWarmup
    // A constant schedule has no decay to end: --lr-decay-steps is refused with it.
    const fixed = r.fixedDecay && r.decayStyle !== "constant"
    const schedule: LrSchedule.Schedule = {
      lr: r.lr,
      minLr: r.lr * r.minFraction,
      warmup: r.warmup,
      steps: fixed ? r.steps : decaySteps,
      decayStyle: r.decayStyle,
      ...(fixed ? { decaySteps } : {}),
      ...(r.decayStyle === "wsd" ? { wsdDecaySteps: Math.max(1, Math.round(r.wsdFraction * r.decayAfterWarmup)), wsdDecayStyle: r.wsdDecayStyle } : {}),
    }
    return { schedule, decaySteps }
  })

describe("the learning-rate schedule", () => {
  test("after the warm-up, every style is Megatron-Core's get_lr at num_steps = k; during it, peak (k + 1) / W", () => {
    fc.assert(
      fc.property(settings, fc.integer({ min: 0, max: 400 }), ({ schedule: s, decaySteps }, k) => {
        LrSchedule.check(s)
        const got = LrSchedule.learningRate(s, k)
        const expected =
          k < s.warmup
            ? (s.lr * (k + 1)) / s.warmup
            : megatron({
                maxLr: s.lr,
                minLr: s.minLr,
                warmupSteps: s.warmup,
                decaySteps,
                style: s.decayStyle ?? "cosine",
                wsdDecaySteps: s.wsdDecaySteps ?? 0,
                wsdStyle: s.wsdDecayStyle ?? "exponential",
                numSteps: k,
              })
        expect(Math.abs(got - expected), `k ${k} ${JSON.stringify(s)}`).toBeLessThanOrEqual(1e-12 * s.lr)
      }),
      { numRuns: 2000 },
    )
  })

  test("within [min, peak], never rising after the warm-up, min from the end of the decay on (constant: the peak)", () => {
    fc.assert(
      fc.property(settings, ({ schedule: s, decaySteps }) => {
        let before = Number.POSITIVE_INFINITY
        for (let k = s.warmup; k < decaySteps + 5; k++) {
          const lr = LrSchedule.learningRate(s, k)
          expect(lr).toBeGreaterThanOrEqual(s.minLr - 1e-15)
          expect(lr).toBeLessThanOrEqual(s.lr + 1e-15)
          expect(lr).toBeLessThanOrEqual(before + 1e-15)
          before = lr
          if (k > decaySteps) expect(lr).toBe(s.decayStyle === "constant" ? s.lr : s.minLr)
        }
      }),
      { numRuns: 300 },
    )
  })

  test("the default (no style given) is the cosine over --steps that pleat always had", () => {
    const s = { lr: 0.01, minLr: 0.001, warmup: 2, steps: 10 }
    expect(LrSchedule.learningRate(s, 0)).toBe(0.005)
    expect(LrSchedule.learningRate(s, 6)).toBeCloseTo(0.001 + 0.009 * 0.5, 15)
    expect(LrSchedule.learningRate(s, 10)).toBe(0.001)
  })
})
