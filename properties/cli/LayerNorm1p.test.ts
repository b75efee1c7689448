// --apply-layernorm-1p (Megatron's zero-centered norms): every norm weight is stored from 0 and
// read as 1 + w, so the model computes what the plain one does: in float64 its losses are the
// plain run's (to rounding) and its saved norm weights are the plain ones minus 1, every other
// parameter the same; folded mappings train as one rank does with every kind of norm (the
// blocks', q/k norms, multi-latent attention's latents, MTP's); a checkpoint records it and export
// refuses it.
import { describe, expect, test } from "vitest"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { fresh, mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

const small = ["--hidden", "16", "--seq", "16", "--global-batch", "4", "--vocab", "40", "--dtype", "float64"]

describe("--apply-layernorm-1p", () => {
  test("the plain model's losses, and its norm weights less 1", async () => {
    const trained = async (extra: ReadonlyArray<string>) => {
      const dir = fresh("norm-1p")
      const r = await run(["train", ...mapping(4, 2, 1, 2, 2), ...small, "--qk-norm", "--mtp-num-layers", "1", "--steps", "4", "--log", "json", "--save", dir, ...extra])
      expect(r.status, r.err).toBe(0)
      return { losses: stepLosses(r.out), values: Checkpoint.values(dir).values }
    }
    const [plain, centered] = [await trained([]), await trained(["--apply-layernorm-1p"])]
    expect(centered.losses).toHaveLength(4)
    centered.losses.forEach((l, i) => expect(Math.abs(l - (plain.losses[i] as number))).toBeLessThan(1e-12))
    let norms = 0
    for (const [name, t] of plain.values) {
      const isNorm = /[Nn]orm$/.test(name)
      norms += isNorm ? 1 : 0
      const a = Tensor.toArray(t)
      const b = Tensor.toArray(centered.values.get(name) as Tensor.Tensor)
      a.forEach((v, i) => expect(Math.abs((b[i] as number) + (isNorm ? 1 : 0) - v), name).toBeLessThan(1e-10))
    }
    expect(norms).toBeGreaterThan(4)
  }, 120_000)

  test("folded mappings train as one rank does with every kind of norm; a checkpoint records it; export refuses it", async () => {
    for (const flags of [
      [...mapping(8, 2, 2, 2, 2), "--qk-norm", "--mtp-num-layers", "1"],
      [...mapping(4, 1, 2, 2, 2), "--multi-latent-attention", "--q-lora-rank", "8", "--backend", "threads"],
    ]) {
      const r = await run(["verify", ...small, ...flags, "--apply-layernorm-1p", "--steps", "2"])
      expect(r.status, r.err).toBe(0)
      expect(r.out, flags.join(" ")).toMatch(/: OK\n?$/)
    }
    const ckpt = fresh("norm-1p-ckpt")
    expect((await run(["train", ...mapping(1, 1, 1, 1, 1), ...small, "--apply-layernorm-1p", "--steps", "1", "--save", ckpt])).status).toBe(0)
    expect(Checkpoint.manifest(ckpt).model.normOnePlus).toBe(true)
    const resumed = await run(["train", ...mapping(1, 1, 1, 1, 1), ...small, "--steps", "2", "--resume", ckpt])
    expect(resumed.status).toBe(2)
    expect(resumed.err).toContain("normOnePlus")
    expect(refused(["export", "--checkpoint", ckpt, "--out", `${fresh("norm-1p-out")}/m`])).toContain("its norms' weights are zero-centered (--apply-layernorm-1p)")
  }, 240_000)
})
