// The optimizer flags of `pleat train` / `pleat verify` (--lr, --min-lr, --warmup-steps,
// --weight-decay, --clip-grad, --adam-beta1, --adam-beta2, --adam-eps, and the decay's
// --lr-decay-style, --lr-decay-steps, --lr-wsd-decay-steps, --lr-wsd-decay-style): each reaches the job's
// AdamW settings, from a flag or from the same key in a JSON config file (the flag wins); an
// unset one keeps its default (min-lr follows --lr / 10); a value out of range is refused with
// exit 2 and one line naming the flag and the fix; --clip-grad 0 turns clipping off; and the
// learning rate reaches training (two rates, two different second-step losses).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import * as Train from "../../src/train/Train.js"
import { fresh, run } from "./cliRun.js"
import { configFile } from "./configFile.js"
import { refused } from "./refused.js"
import { records } from "./tokenFiles.js"

const optimizerOf = (argv: ReadonlyArray<string>) => {
  const r = TrainOptions.resolve(argv)
  if (r === "help") throw new Error("help")
  return r.setup.optimizer
}

const settingsArb = fc.record(
  {
    lr: fc.double({ min: 1e-6, max: 1, noNaN: true }),
    "warmup-steps": fc.integer({ min: 0, max: 50 }),
    "weight-decay": fc.double({ min: 0, max: 0.5, noNaN: true }),
    "clip-grad": fc.double({ min: 0, max: 10, noNaN: true }),
    "adam-beta1": fc.double({ min: 0, max: 0.999, noNaN: true }),
    "adam-beta2": fc.double({ min: 0, max: 0.9999, noNaN: true }),
    "adam-eps": fc.double({ min: 1e-12, max: 1e-3, noNaN: true }),
  },
  { requiredKeys: [] },
)

const expected = (steps: number, s: Record<string, number | undefined>): Optimizer.OptimizerConfig => {
  const d = Optimizer.defaults(steps)
  return {
    ...d,
    lr: s.lr ?? d.lr,
    minLr: s.lr === undefined ? d.minLr : s.lr / 10,
    warmup: s["warmup-steps"] ?? d.warmup,
    weightDecay: s["weight-decay"] ?? d.weightDecay,
    clip: s["clip-grad"] ?? d.clip,
    beta1: s["adam-beta1"] ?? d.beta1,
    beta2: s["adam-beta2"] ?? d.beta2,
    eps: s["adam-eps"] ?? d.eps,
    decayStyle: "cosine",
  }
}

describe("optimizer flags", () => {
  test("flags and config keys reach the AdamW settings; unset ones keep their defaults", () => {
    fc.assert(
      fc.property(settingsArb, fc.integer({ min: 1, max: 500 }), (s, steps) => {
        const argv = Object.entries(s).flatMap(([k, v]) => [`--${k}`, String(v)])
        const want = expected(steps, s)
        expect(optimizerOf([...argv, "--steps", String(steps)])).toEqual(want)
        expect(optimizerOf(["--config", configFile(s), "--steps", String(steps)])).toEqual(want)
      }),
      { numRuns: 40 },
    )
  })

  test("the default learning rate follows the width: 3e-2 up to hidden 32, 3e-2 * 32 / hidden above; --lr wins", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 500 }), (heads, steps) => {
        const hidden = heads * 4 * 4
        const one = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
        const o = optimizerOf([...one, "--hidden", String(hidden), "--heads", String(heads), "--kv-heads", "1", "--steps", String(steps)])
        const want = hidden <= 32 ? 3e-2 : (3e-2 * 32) / hidden
        expect(o.lr).toBeCloseTo(want, 15)
        expect(o.minLr).toBeCloseTo(want / 10, 15)
        expect(o.lr).toBe(Optimizer.defaults(steps, hidden).lr)
        const given = optimizerOf([...one, "--hidden", String(hidden), "--heads", String(heads), "--kv-heads", "1", "--lr", "0.002"])
        expect([given.lr, given.minLr]).toEqual([0.002, 0.002 / 10])
      }),
      { numRuns: 30 },
    )
    expect(optimizerOf(["--hidden", "1024", "--heads", "16", "--kv-heads", "4"]).lr).toBeCloseTo(9.375e-4, 15)
  })

  test("a flag wins over the config file, and --min-lr is kept as given", () => {
    const o = optimizerOf(["--config", configFile({ lr: 0.5, "min-lr": 0.01 }), "--lr", "0.2"])
    expect(o.lr).toBe(0.2)
    expect(o.minLr).toBe(0.01)
  })

  test("out-of-range values are refused naming the flag and the fix", () => {
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [["--lr", "0"], "pleat train: --lr: 0 is not above 0; fix: use a learning rate such as 3e-4"],
      [["--lr", "1e-3", "--min-lr", "0.1"], "pleat train: --min-lr: 0.1 is not within 0..0.001 (--lr); fix: use a value from 0 to 0.001"],
      [["--weight-decay", "-0.1"], "pleat train: --weight-decay: -0.1 is negative; fix: use 0 (none) or more, such as 0.1"],
      [["--clip-grad", "-1"], "pleat train: --clip-grad: -1 is negative; fix: use 0 (no clipping) or a norm such as 1"],
      [["--adam-beta1", "1"], "pleat train: --adam-beta1: 1 is not in [0, 1); fix: use a decay such as 0.9 or 0.95"],
      [["--adam-beta2", "-0.5"], "pleat train: --adam-beta2: -0.5 is not in [0, 1); fix: use a decay such as 0.9 or 0.95"],
      [["--adam-eps", "0"], "pleat train: --adam-eps: 0 is not above 0; fix: use a small positive number such as 1e-8"],
    ]
    for (const [argv, line] of cases) expect(refused(["train", ...argv])).toBe(line)
    expect(refused(["train", "--warmup-steps", "-1"])).toContain("--warmup-steps")
    expect(refused(["train", "--config", configFile({ "adam-eps": -1 })])).toMatch(/"adam-eps" in .*job\.json: -1 is not above 0/)
  })

  test("the decay flags reach the schedule (flags or config keys); what does not fit is refused naming the flag", () => {
    const o = optimizerOf(["--lr-decay-style", "wsd", "--lr-decay-steps", "80", "--lr-wsd-decay-steps", "20", "--steps", "100", "--warmup-steps", "5"])
    expect([o.decayStyle, o.decaySteps, o.wsdDecaySteps, o.wsdDecayStyle]).toEqual(["wsd", 80, 20, undefined])
    const fromFile = optimizerOf(["--config", configFile({ "lr-decay-style": "wsd", "lr-wsd-decay-style": "minus-sqrt" })])
    expect([fromFile.decayStyle, fromFile.wsdDecayStyle]).toEqual(["wsd", "minus-sqrt"])
    expect(optimizerOf([]).decayStyle).toBe("cosine")
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [
        ["--lr-wsd-decay-steps", "5"],
        "pleat train: --lr-wsd-decay-steps: 5 shapes a wsd schedule, and --lr-decay-style is cosine; fix: add --lr-decay-style wsd, or drop --lr-wsd-decay-steps",
      ],
      [
        ["--lr-wsd-decay-style", "linear", "--lr-decay-style", "linear"],
        'pleat train: --lr-wsd-decay-style: "linear" shapes a wsd schedule, and --lr-decay-style is linear; fix: add --lr-decay-style wsd, or drop --lr-wsd-decay-style',
      ],
      [
        ["--lr-decay-steps", "4", "--warmup-steps", "5"],
        "pleat train: --lr-decay-steps: 4 ends the decay before the warm-up's 5 steps; fix: use --lr-decay-steps 5 or more, or fewer --warmup-steps",
      ],
      [
        ["--lr-decay-steps", "40", "--lr-decay-style", "constant"],
        "pleat train: --lr-decay-steps: 40 has no decay to end (--lr-decay-style constant); fix: drop --lr-decay-steps, or choose a decaying --lr-decay-style",
      ],
      [
        ["--lr-decay-style", "wsd", "--lr-wsd-decay-steps", "96", "--steps", "100", "--warmup-steps", "5"],
        "pleat train: --lr-wsd-decay-steps: 96 is longer than the 95 steps between the warm-up and the end of the decay (step 100); fix: use at most 95, or more --lr-decay-steps (or --steps)",
      ],
    ]
    // (Some lines go on to name the defaults in effect.)
    for (const [argv, line] of cases) expect(refused(["train", ...argv]).startsWith(line), `${argv.join(" ")}: ${refused(["train", ...argv])}`).toBe(true)
    expect(refused(["train", "--lr-decay-style", "step"])).toContain("--lr-decay-style")
    expect(refused(["train", "--lr-decay-steps", "0"])).toContain("--lr-decay-steps")
  })

  test("a run resumed for more steps keeps its schedule when --lr-decay-steps fixes it (the cosine over --steps stretches)", async () => {
    const one = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--hidden", "16", "--seq", "8", "--global-batch", "2", "--warmup-steps", "1"]
    const lrs = async (argv: ReadonlyArray<string>) => {
      const r = await run(["train", ...one, ...argv, "--log", "json"])
      expect(r.status, r.err).toBe(0)
      return records(r.out, "step").map((x) => x.lr)
    }
    for (const [decay, stretches] of [
      [["--lr-decay-style", "linear", "--lr-decay-steps", "6"], false],
      [[], true],
    ] as const) {
      const dir = fresh("lr-resume")
      const whole = await lrs([...decay, "--steps", "6"])
      await lrs([...decay, "--steps", "3", "--save", dir])
      const resumed = await lrs([...decay, "--steps", "8", "--resume", dir])
      expect(resumed).toHaveLength(5)
      if (stretches) expect(resumed.slice(0, 3)).not.toEqual(whole.slice(3))
      // Steps 7 and 8 are past the decay's end: the minimum (a tenth of the default 3e-2).
      else expect(resumed).toEqual([...whole.slice(3), 0.003, 0.003])
    }
  }, 60_000)

  test("--clip-grad 0 turns clipping off; otherwise the gradients scale to the norm", () => {
    expect(Optimizer.clipScale(optimizerOf(["--clip-grad", "0"]), 1e6)).toBe(1)
    expect(Optimizer.clipScale(optimizerOf(["--clip-grad", "2"]), 8)).toBe(2 / (8 + 1e-6))
    expect(Optimizer.clipScale(optimizerOf(["--clip-grad", "2"]), 1)).toBe(1)
  })

  test("the learning rate reaches training", async () => {
    const secondLoss = async (lr: string) => {
      const r = TrainOptions.resolve(["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--steps", "2", "--warmup-steps", "0", "--lr", lr])
      if (r === "help") throw new Error("help")
      const steps = await Effect.runPromise(Train.run(r.setup, { steps: 2, backend: "local" }))
      return [steps[0]?.loss, steps[1]?.loss]
    }
    const [slowFirst, slow] = await secondLoss("1e-4")
    const [fastFirst, fast] = await secondLoss("3e-2")
    expect(slowFirst).toBe(fastFirst)
    expect(slow).not.toBe(fast)
  })
})
