// `--add-bias-linear` (Megatron's add_bias_linear: biases on q, k, v, the attention's output and
// both projections of every MLP: dense, shared and routed experts) and `--router-bias` (GPT-OSS's
// bias on the router's logits): folded mappings train as one rank (pleat verify in float64 with
// tp, cp, pp, ep and expert tensor parallelism, where each ETP member adds its block of fc2's
// bias columns; the probs at the experts and at the combine; both dispatchers; recompute; shared
// experts and dense layers; dropping with padded rows; float32 on the native kernels); the biases start at zero, move, take
// no weight decay and change the model; they are part of a checkpoint's identity.
import { describe, expect, test } from "vitest"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import * as Params from "../../src/train/Params.js"
import { fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

const biases = ["--add-bias-linear", "--router-bias"]
const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--layers", "2"]

describe("linear and router biases (--add-bias-linear, --router-bias)", () => {
  test("folded mappings train as one rank (pleat verify)", async () => {
    const cases = [
      ["--dtype", "float64", ...biases, "--world", "8", "--tp", "2", "--cp", "1", "--pp", "2", "--ep", "2", "--etp", "2", "--recompute", "selective"],
      [
        "--dtype",
        "float64",
        ...biases,
        "--world",
        "8",
        "--tp",
        "2",
        "--cp",
        "2",
        "--pp",
        "1",
        "--ep",
        "4",
        "--probs-at",
        "combine",
        "--shared-expert-ffn",
        "32",
        "--dense-first",
        "1",
      ],
      [
        "--dtype",
        "float64",
        "--add-bias-linear",
        "--world",
        "4",
        "--tp",
        "2",
        "--cp",
        "1",
        "--pp",
        "1",
        "--ep",
        "2",
        "--etp",
        "2",
        "--dispatcher",
        "allgather",
        "--recompute",
        "full",
      ],
      [
        "--dtype",
        "float64",
        ...biases,
        "--quick-geglu",
        "--glu-linear-offset",
        "1",
        "--activation-func-clamp-value",
        "7",
        "--softmax-type",
        "learnable",
        ...["--world", "4", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "2", "--capacity-factor", "1", "--pad-to-capacity"],
      ],
      [...biases, "--etp", "2"],
    ]
    for (const flags of cases) {
      const r = await run(["verify", "--steps", "3", ...flags])
      expect(r.status, `${flags.join(" ")}: ${r.out}${r.err}`).toBe(0)
    }
  }, 300_000)

  test("the biases: where they are, from zero, moved by training, without weight decay, part of a checkpoint's identity", async () => {
    const m = { ...ModelConfig.small, linearBias: true, routerBias: true, sharedExpertFfn: 32, denseFirst: 1 }
    const names = Params.specs(m)
      .filter((s) => s.bias === true)
      .map((s) => [s.name, s.shape, s.sharding])
    expect(names.filter(([n]) => (n as string).startsWith("layers.1."))).toEqual([
      ["layers.1.bo", [m.hidden], "replicated"],
      ["layers.1.routerBias", [m.experts], "replicated"],
      ["layers.1.experts.bGate", [m.experts, m.moeFfn], "expert-rows"],
      ["layers.1.experts.bUp", [m.experts, m.moeFfn], "expert-rows"],
      ["layers.1.experts.bDown", [m.experts, m.hidden], "expert-rows"],
      ["layers.1.shared.bGate", [32], "rows/tp"],
      ["layers.1.shared.bUp", [32], "rows/tp"],
      ["layers.1.shared.bDown", [m.hidden], "replicated"],
    ])
    // The dense first layer's MLP has its three.
    expect(names.filter(([n]) => /^layers\.0\.b(Gate|Up|Down)$/.test(n as string))).toHaveLength(3)
    const optimizer = { weightDecay: 0.1 } as Optimizer.OptimizerConfig
    for (const spec of Params.specs(m)) expect(Optimizer.decayOf(optimizer, spec), spec.name).toBe(spec.bias === true || spec.shape.length === 1 ? 0 : 0.1)

    const ckpt = fresh("linear-bias")
    const trained = await run(["train", ...oneRank, ...biases, "--steps", "3", "--log", "json", "--save", ckpt])
    expect(trained.status, trained.err).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.linearBias).toBe(true)
    expect(Checkpoint.manifest(ckpt).model.routerBias).toBe(true)
    const saved = Checkpoint.values(ckpt).values
    for (const name of ["layers.0.bo", "layers.0.routerBias", "layers.0.experts.bGate", "layers.0.experts.bDown", "layers.1.bq"])
      expect(
        Array.from(saved.get(name)?.data ?? []).some((x) => x !== 0),
        name,
      ).toBe(true)
    // From zero: the first step's loss is the model's without biases; later steps differ.
    const plain = await run(["train", ...oneRank, "--steps", "3", "--log", "json"])
    const [withBias, without] = [stepLosses(trained.out), stepLosses(plain.out)]
    expect(withBias[0]).toBe(without[0])
    expect(withBias[2]).not.toBe(without[2])

    const other = await run(["train", ...oneRank, "--steps", "4", "--resume", ckpt])
    expect(other.status).toBe(2)
    expect(other.err).toContain("linearBias on")
    expect((await run(["train", ...oneRank, ...biases, "--steps", "4", "--resume", ckpt])).status).toBe(0)
    // Named by its flag, not the model's field (linearBias).
    expect(refused(["train", "--add-bias-linear", "--multi-latent-attention"])).toMatch(/^pleat train: --add-bias-linear: true is not built for multi-latent attention/)
  }, 120_000)
})
