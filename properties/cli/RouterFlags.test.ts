// The router, MoE-layer and size flags of `pleat train` / `pleat verify`: a JSON config with a
// key gives the same job as the flag of the same name; the sizes reach the model (the expert
// width changes the parameters); what cannot train is refused with exit 2 and one line naming
// the fix; verify refuses what one rank cannot reproduce (dropping and Sinkhorn routing with tp*cp > 1, forced balance in float32 with
// tp*cp*etp > 1, global_aux with dp > 1); no new flag leaves the default job as it was.
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as BadInput from "../../src/cli/BadInput.js"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Params from "../../src/train/Params.js"
import { configFile } from "./configFile.js"
import { refused } from "./refused.js"

const setupOf = (argv: ReadonlyArray<string>) => {
  const r = TrainOptions.resolve(argv)
  if (r === "help") throw new Error("help")
  return r.setup
}

/** The job's model and aux coefficient, or the reasons it was refused for. */
const outcome = (argv: ReadonlyArray<string>) => {
  try {
    const s = setupOf(argv)
    return { model: s.model, auxLossCoeff: s.auxLossCoeff }
  } catch (error) {
    if (error instanceof BadInput.BadInput) return { refused: error.problems.map((p) => p.reason) }
    throw error
  }
}

/** Each setting with values it accepts on the default mapping, as JSON values. */
const accepted: ReadonlyArray<readonly [string, ReadonlyArray<number | string | boolean>]> = [
  ["score-function", ["softmax", "sigmoid", "sqrtsoftplus"]],
  ["pre-softmax", [true, false]],
  ["scaling-factor", [2.5, 0.25, -1]],
  ["aux-loss", ["aux:0.01", "seq_aux:0.1,aux:0.02", "global_aux:0.001", "none"]],
  ["z-loss-coeff", [0, 0.001]],
  ["dispatcher", ["alltoall", "allgather"]],
  ["capacity-factor", [1, 1.25]],
  ["drop-policy", ["probs", "position"]],
  ["expert-bias", [true, false]],
  ["shared-expert-ffn", [16, 64]],
  ["shared-expert-gate", [true, false]],
  ["bias-update-rate", [0.001, 0.01]],
  ["force-load-balancing", [true, false]],
  ["sinkhorn", [true, false]],
  ["probs-at", ["experts", "combine", "input"]],
  ["input-jitter-eps", [0.01, 0.5]],
  ["force-biased", [-1, 0.5]],
  ["quantile-balancing", [true, false]],
  ["quantile-balancing-ema", [0, 0.9]],
  ["ffn", [32, 128]],
  ["moe-ffn", [16, 64]],
  ["moe-every", [1, 2, 4]],
]

const asFlags = (values: Record<string, number | string | boolean>): Array<string> =>
  Object.entries(values).flatMap(([k, v]) => (v === true ? [`--${k}`] : v === false ? [] : [`--${k}`, String(v)]))

describe("flags and JSON keys", () => {
  test("a JSON config with the keys gives the job of the same flags", () => {
    const pick = fc
      .subarray([...accepted.keys()], { minLength: 1 })
      .chain((keys) =>
        fc.tuple(...keys.map((i) => fc.constantFrom(...(accepted[i] as (typeof accepted)[number])[1].map((v) => [(accepted[i] as (typeof accepted)[number])[0], v] as const)))),
      )
    fc.assert(
      fc.property(pick, (pairs) => {
        const values = Object.fromEntries(pairs)
        // The same job, or the same refusal (its reason; the name says where the value came from).
        const fromFlags = outcome(asFlags(values))
        const fromFile = outcome(["--config", configFile(values)])
        expect(fromFile).toEqual(fromFlags)
      }),
      { numRuns: 40 },
    )
  })

  test("group-limited routing and padding, by flag and by key", () => {
    const values = { "num-groups": 4, "group-topk": 2, "capacity-factor": 1.5, "pad-to-capacity": true }
    const fromFlags = setupOf(asFlags(values))
    expect(setupOf(["--config", configFile(values)]).model).toEqual(fromFlags.model)
    expect(fromFlags.model.moe).toMatchObject({ numGroups: 4, groupTopk: 2, capacityFactor: 1.5, padToCapacity: true })
  })

  test("--force-load-balancing, by flag and by key, sets the router's forced balance and nothing else", () => {
    const fromFlag = setupOf(["--force-load-balancing"]).model.moe
    expect(fromFlag).toEqual({ ...MoeSettings.defaults, forceLoadBalancing: true })
    expect(setupOf(["--config", configFile({ "force-load-balancing": true })]).model.moe).toEqual(fromFlag)
  })

  test("--sinkhorn, by flag and by key, sets Sinkhorn routing and drops the default aux loss (a given one is refused)", () => {
    const fromFlag = setupOf(["--sinkhorn"])
    expect(fromFlag.model.moe).toEqual({ ...MoeSettings.defaults, auxLosses: [], sinkhorn: true })
    expect(fromFlag.auxLossCoeff).toBe(0)
    expect(setupOf(["--config", configFile({ sinkhorn: true })]).model.moe).toEqual(fromFlag.model.moe)
    expect(setupOf(["--sinkhorn", "--aux-loss", "none", "--z-loss-coeff", "0.001"]).model.moe).toMatchObject({ sinkhorn: true, auxLosses: [], zLossCoeff: 0.001 })
  })

  test("--quantile-balancing, by flag and by key, with its ema; the default aux loss dropped with it", () => {
    const fromFlag = setupOf(["--quantile-balancing", "--quantile-balancing-ema", "0.5"])
    expect(fromFlag.model.moe).toEqual({ ...MoeSettings.defaults, auxLosses: [], quantileBalancing: true, quantileBalancingEma: 0.5 })
    expect(fromFlag.auxLossCoeff).toBe(0)
    expect(setupOf(["--config", configFile({ "quantile-balancing": true, "quantile-balancing-ema": 0.5 })]).model.moe).toEqual(fromFlag.model.moe)
    expect(setupOf(["--quantile-balancing", "--score-function", "sigmoid", "--scaling-factor", "2.5"]).model.moe).toMatchObject({
      quantileBalancing: true,
      scoreFunction: "sigmoid",
      scalingFactor: 2.5,
    })
  })

  test("no new flag: today's router (softmax after top-k, dropless, aux 0.01, all-to-all) and sizes", () => {
    const s = setupOf([])
    expect(s.model.moe).toEqual(MoeSettings.defaults)
    expect(s.auxLossCoeff).toBe(0.01)
    const { moe: _moe, ...sizes } = s.model
    expect(sizes).toEqual({ ...ModelConfig.small, seq: ModelConfig.small.seq })
  })
})

describe("sizes", () => {
  test("--hidden 64 --moe-ffn 128 --ffn 96 --moe-every 2 shape the parameters", () => {
    const m = setupOf(["--hidden", "64", "--moe-ffn", "128", "--ffn", "96", "--moe-every", "2"]).model
    const specs = new Map(Params.specs(m).map((p) => [p.name, p.shape]))
    expect(specs.get("layers.0.experts.wGate")).toEqual([8, 64, 128])
    expect(specs.get("layers.1.wGate")).toEqual([64, 96])
    expect(specs.has("layers.1.router")).toBe(false)
    const shared = new Map(Params.specs(setupOf(["--shared-expert-ffn", "24", "--shared-expert-gate"]).model).map((p) => [p.name, p.shape]))
    expect([shared.get("layers.0.shared.wGate"), shared.get("layers.0.shared.wDown"), shared.get("layers.0.shared.gate")]).toEqual([
      [32, 24],
      [24, 32],
      [32, 1],
    ])
    const count = (model: ModelConfig.ModelConfig) => Params.specs(model).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0)
    expect(count(setupOf(["--hidden", "64", "--moe-ffn", "128"]).model)).toBeGreaterThan(count(setupOf(["--hidden", "64"]).model))
  })
})

describe("refusals: exit 2, one line naming the fix", () => {
  test.each([
    [["--topk", "1"], "--topk: 1 with softmax after the top-k gives every token the prob 1", "add --pre-softmax"],
    [["--num-groups", "3", "--group-topk", "1"], "--num-groups: 3 does not divide experts = 8", "divides 8"],
    [["--num-groups", "4"], "--group-topk", "give both --num-groups and --group-topk"],
    [["--num-groups", "4", "--group-topk", "3"], "--group-topk: 3 does not divide num-groups = 4", "divides 4"],
    [["--num-groups", "8", "--group-topk", "1", "--topk", "2"], "--group-topk: 1 keeps 1 groups of 1 experts, fewer than topk = 2", "raise --group-topk to 2"],
    [["--capacity-factor", "1", "--scaling-factor", "-2"], "--scaling-factor: -2 is negative, so dropping by probs", "--drop-policy position"],
    [["--pad-to-capacity"], "--pad-to-capacity: true has no capacity to pad to", "add --capacity-factor"],
    [["--capacity-factor", "0"], "--capacity-factor: 0 is not a number > 0", "dropless"],
    [["--capacity-factor", "x"], '--capacity-factor: "x" is not a finite number', "a number"],
    [["--aux-loss", "aux:-1"], '--aux-loss: "aux:-1" has the coefficient "-1"', "TYPE:COEFF"],
    [["--aux-loss", "load:1"], '--aux-loss: "load:1" has "load:1", not TYPE:COEFF', "aux, seq_aux, global_aux"],
    [["--aux-loss", "aux:1,aux:2"], "gives aux twice", "TYPE:COEFF"],
    [["--z-loss-coeff", "-0.5"], "--z-loss-coeff: -0.5 is not a number >= 0", "0 (off)"],
    [["--score-function", "sigmoid", "--pre-softmax"], "--pre-softmax: true has no effect with --score-function sigmoid", "drop --pre-softmax"],
    [["--score-function", "relu"], '--score-function: "relu" is not allowed', "softmax, sigmoid, sqrtsoftplus"],
    [["--dispatcher", "deepep"], '--dispatcher: "deepep" is not allowed', "alltoall, allgather"],
    [["--drop-policy", "random"], '--drop-policy: "random" is not allowed', "probs, position"],
    [["--etp", "2", "--ep", "1", "--moe-ffn", "33"], "--moe-ffn: 33 is not divisible by etp = 2", "--moe-ffn"],
    [["--ffn", "33"], "--ffn: 33 is not divisible by tp = 2", "--ffn"],
    [["--shared-expert-gate"], "--shared-expert-gate: true has no shared MLP to gate", "add --shared-expert-ffn N"],
    [["--shared-expert-ffn", "15"], "--shared-expert-ffn: 15 is not divisible by tp = 2", "multiple of 2"],
    [["--expert-bias"], "--expert-bias: true only moves sigmoid (or sqrtsoftplus) scores", "add --score-function sigmoid"],
    [["--score-function", "sigmoid", "--expert-bias", "--bias-update-rate", "0"], "--bias-update-rate: 0 is not a number > 0", "0.001"],
    [["--sinkhorn", "--aux-loss", "aux:0.01"], '--aux-loss: "aux:0.01" is a load-balancing loss, which Sinkhorn routing does not take', "add --aux-loss none"],
    [["--sinkhorn", "--score-function", "sigmoid"], '--score-function: "sigmoid" is not used by Sinkhorn routing', "drop --sinkhorn"],
    [["--sinkhorn", "--pre-softmax"], "--pre-softmax: true is not used by Sinkhorn routing", "drop --sinkhorn"],
    [["--sinkhorn", "--num-groups", "4", "--group-topk", "2"], "--num-groups: 4 is group-limited routing, which Sinkhorn routing has not", "drop --sinkhorn"],
    [["--sinkhorn", "--scaling-factor", "2"], "--scaling-factor: 2 is not applied by Sinkhorn routing", "drop --sinkhorn"],
    [
      ["--sinkhorn", "--capacity-factor", "1.25"],
      "--capacity-factor: 1.25 drops tokens, which Megatron-LM allows only with the aux losses or none",
      "Sinkhorn routing is dropless",
    ],
    [["--sinkhorn", "--force-load-balancing"], "--force-load-balancing: true replaces with noise the logits Sinkhorn routing selects from", "use one of them"],
    [
      ["--moe-router-load-balancing-type", "sinkhorn", "--moe-aux-loss-coeff", "0.01"],
      '--moe-aux-loss-coeff: "0.01" is not 0, and Sinkhorn routing takes no aux loss',
      "drop --moe-aux-loss-coeff",
    ],
    [["--moe-router-topk-limited-devices", "1", "--moe-router-group-topk", "1"], "both set the groups", "give --moe-router-num-groups and --moe-router-group-topk alone"],
    [["--moe-router-load-balancing-type", "sinkhorn", "aux_loss"], "lists sinkhorn with other types", "give sinkhorn alone"],
    [["--force-biased", "0"], "--force-biased: 0 is not a finite non-zero std", "negative draws it once per layer"],
    [["--sinkhorn", "--force-biased", "-1"], "--force-biased: -1 replaces with noise the logits Sinkhorn routing selects from", "use one of them"],
    [["--input-jitter-eps", "1"], "--input-jitter-eps: 1 is not a number in (0, 1)", "0.01"],
    [["--probs-at", "input"], '--probs-at: "input" scales each token by its prob before its one expert, and with top-k 2 a token has 2', "use --topk 1"],
    [["--quantile-balancing", "--aux-loss", "seq_aux:0.01"], '--aux-loss: "seq_aux:0.01" is a load-balancing loss, which quantile balancing does not take', "add --aux-loss none"],
    [["--quantile-balancing", "--num-groups", "4", "--group-topk", "2"], "--num-groups: 4 is group-limited routing, which quantile balancing has not", "drop --quantile-balancing"],
    [
      ["--quantile-balancing", "--capacity-factor", "1"],
      "--capacity-factor: 1 drops tokens, which Megatron-LM allows only with the aux losses or none",
      "quantile balancing is dropless",
    ],
    [["--quantile-balancing", "--score-function", "sigmoid", "--expert-bias"], "--expert-bias: true balances the selection another way than quantile balancing", "use one of them"],
    [["--quantile-balancing", "--sinkhorn"], "--sinkhorn: true selects the experts another way than quantile balancing", "use one of them"],
    [["--quantile-balancing", "--topk", "8"], "--topk: 8 routes to all 8 experts, where quantile balancing needs a (k+1)-th expert", "lower --topk"],
    [["--quantile-balancing", "--quantile-balancing-ema", "1"], "--quantile-balancing-ema: 1 is not in [0, 1)", "0.9"],
    [["--quantile-balancing-ema", "0.5"], "--quantile-balancing-ema: 0.5 has no quantile balancing to smooth", "add --quantile-balancing"],
    [
      ["--quantile-balancing", "--cp", "1", "--tp", "1", "--seq", "10"],
      "--quantile-balancing: true aims every expert at m * k / E tokens of a micro-batch, and its 10 tokens (--micro-batch x --seq) times top-k 2 are not a multiple of the 8 experts",
      "divide by 8",
    ],
    [
      ["--moe-router-load-balancing-type", "quantile_balancing", "--moe-aux-loss-coeff", "0.001"],
      '--moe-aux-loss-coeff: "0.001" is not 0, and quantile balancing takes no aux loss',
      "drop --moe-aux-loss-coeff",
    ],
  ])("train %j", (argv, reason, fix) => {
    const line = refused(["train", ...argv])
    expect(line).toContain(reason)
    expect(line.split("; fix: ")[1]).toContain(fix)
  })

  test("--expert-bias resuming a checkpoint saved without biases is refused (they would restart from 0)", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-router-")), "ckpt")
    const small = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--layers", "1", "--score-function", "sigmoid"]
    const io = memoryIo()
    expect(await Cli.run(["train", ...small, "--steps", "1", "--save", dir, "--log", "json"], io), io.err).toBe(0)
    const line = refused(["train", ...small, "--steps", "2", "--expert-bias", "--resume", dir])
    expect(line).toContain(`--expert-bias: true has no saved biases in ${dir}`)
    expect(line.split("; fix: ")[1]).toContain("resume without --expert-bias")
  })

  test("--quantile-balancing resuming a checkpoint saved without betas is refused (they would restart from 0)", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-router-")), "ckpt")
    const small = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--layers", "1"]
    const io = memoryIo()
    expect(await Cli.run(["train", ...small, "--steps", "1", "--save", dir, "--log", "json"], io), io.err).toBe(0)
    const line = refused(["train", ...small, "--steps", "2", "--quantile-balancing", "--resume", dir])
    expect(line).toContain(`--quantile-balancing: true has no saved betas in ${dir}`)
    expect(line.split("; fix: ")[1]).toContain("resume without --quantile-balancing")
  })

  test("a refused value from the config file names its key", () => {
    const file = configFile({ topk: 1 })
    expect(refused(["train", "--config", file])).toContain(`"topk" in ${file}: 1 with softmax after the top-k`)
    const bad = configFile({ "pre-softmax": "yes" })
    expect(refused(["train", "--config", bad])).toContain(`"pre-softmax" in ${bad}: "yes" is not true or false`)
  })

  test("verify refuses what one rank cannot reproduce, and says why", () => {
    expect(refused(["verify", "--precision", "bf16"])).toMatch(/--precision: "bf16" rounds every op output to bfloat16.*; fix: verify the mapping with --precision fp32/)
    expect(refused(["verify", "--capacity-factor", "1"])).toMatch(
      /--capacity-factor: 1 drops tokens by each rank's capacity, and with tp\*cp = 4 .*; fix: verify dropping with --tp 1 --cp 1/,
    )
    expect(refused(["verify", "--sinkhorn"])).toMatch(
      /--sinkhorn: true balances the routing over each rank's tokens, and with tp\*cp = 4 .*; fix: verify Sinkhorn routing with --tp 1 --cp 1/,
    )
    expect(refused(["verify", "--world", "4", "--tp", "1", "--cp", "1", "--pp", "1", "--aux-loss", "global_aux:0.1"])).toMatch(
      /--aux-loss: "global_aux:0.1" has global_aux, .* 4 dp ranks/,
    )
    // Forced balance's noise is read from the float32 logits' bits, which tp, cp and etp reorder.
    expect(refused(["verify", "--force-load-balancing"])).toMatch(
      /--force-load-balancing: true draws each token's routing noise .* tp\*cp\*etp = 4 .*; fix: verify it with --dtype float64/,
    )
    expect(refused(["verify", "--force-biased", "-1"])).toMatch(
      /--force-biased: -1 draws each token's routing noise .* tp\*cp\*etp = 4 .*; fix: verify it with --dtype float64 .*, or verify without --force-biased/,
    )
    expect(refused(["verify", "--world", "2", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--etp", "2", "--force-load-balancing"])).toMatch(
      /--force-load-balancing: true .* tp\*cp\*etp = 2 /,
    )
    // On a GPU the parallel run's kernels round otherwise than the host's reference (the CLI
    // refuses --device cuda first on a machine without one, so the rule is asked directly).
    const forced = { ...MoeSettings.defaults, forceLoadBalancing: true }
    const alone = { tp: 1, cp: 1, dp: 1, etp: 1 }
    expect(MoeSettings.oneRankProblem(forced, alone, { dtype: "float32", onGpu: true })?.message).toMatch(
      /--force-load-balancing: true .* the GPU's kernels round them otherwise than the host's one-rank run, .*; fix: verify it with --dtype float64 \(.*\), or verify without/,
    )
    expect(MoeSettings.oneRankProblem(forced, alone, { dtype: "float64", onGpu: true })).toBeUndefined()
    expect(MoeSettings.oneRankProblem(forced, alone, { dtype: "float32", onGpu: false })).toBeUndefined()
  })
})
