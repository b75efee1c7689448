// Hash routing in training (`--hash-layers N`, Megatron-Core's --moe-n-hash-layers; DeepSeek-V4's
// hash layers): under any folded mapping the MoE layers among the first N route every token to
// (id + k) mod E (its recording says so, token by token, against the data's ids), the other MoE
// layers and the multi-token prediction layer by their routers; the run trains as one rank does
// (pleat verify, float64: tp with sequence parallelism, cp, pp, vpp, etp, the allgather
// dispatcher, expert bias, quantile balancing, Sinkhorn); the expert bias of a hash layer never
// moves; Megatron's name trains the same run; a replayed recording of a hash run trains it again.
import { readFileSync } from "node:fs"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as Data from "../../src/train/Data.js"
import * as Npy from "../../src/train/Npy.js"
import { fresh, mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

const base = ["--layers", "4", "--steps", "2", "--seed", "5", "--log", "json"]

/** The data's token ids of step k (from 0): the global batch's sequences one after another. */
const stepIds = (k: number, globalBatch: number, seq: number, vocab: number): Int32Array => {
  const out = new Int32Array(globalBatch * seq)
  for (let i = 0; i < globalBatch; i++) {
    const mb = Data.microBatch({ seed: 5, step: k, globalBatch, seq, vocab, dpRank: 0, index: i, microBatch: 1, microBatches: globalBatch })
    out.set(mb.tokens, i * seq)
  }
  return out
}

const train = async (flags: ReadonlyArray<string>) => {
  const r = await run(["train", ...base, ...flags])
  expect(r.status, `${flags.join(" ")}: ${r.err}`).toBe(0)
  return r
}

describe("--hash-layers", () => {
  test("the hash layers route each token by its id under folded mappings, the others by their routers", async () => {
    for (const on of [mapping(8, 2, 2, 2, 2), [...mapping(8, 2, 1, 2, 4), "--vpp", "2"], [...mapping(4, 1, 2, 1, 2, 2), "--dispatcher", "allgather"]]) {
      const dir = fresh("hash-record")
      // MoE layers 1, 2, 3 (layer 0 dense), hashed: 1 and 2; the MTP layer (4) by its router.
      await train([...on, "--dense-first", "1", "--hash-layers", "3", "--mtp-num-layers", "1", "--routing-record", dir])
      const manifest = JSON.parse(readFileSync(path.join(dir, "routing.json"), "utf8"))
      expect(manifest.layers).toEqual([1, 2, 3, 4])
      const { seq, globalBatch, numExperts: e, topk: k } = manifest
      for (const step of [1, 2]) {
        const ids = stepIds(step - 1, globalBatch, seq, 32)
        const file = Npy.decodeIntegers(readFileSync(path.join(dir, `step-0000000${step}.npy`)), "test")
        const tokens = globalBatch * seq
        const byTable = (l: number) => {
          let same = 0
          for (let t = 0; t < tokens; t++) {
            let row = true
            for (let j = 0; j < k; j++) if (file.data[(l * tokens + t) * k + j] !== ((ids[t] as number) + j) % e) row = false
            if (row) same++
          }
          return same / tokens
        }
        expect(byTable(0), `${on.join(" ")}: layer 1, step ${step}`).toBe(1)
        expect(byTable(1), `${on.join(" ")}: layer 2, step ${step}`).toBe(1)
        // Not vacuous: the routers' layers do not follow the table.
        expect(byTable(2)).toBeLessThan(0.9)
        expect(byTable(3)).toBeLessThan(0.9)
      }
    }
  }, 180_000)

  test("trains as one rank on folded mappings (pleat verify, float64)", async () => {
    const cases = [
      [...mapping(8, 2, 2, 2, 2), "--hash-layers", "2"],
      [...mapping(8, 2, 1, 2, 4), "--vpp", "2", "--hash-layers", "3", "--mtp-num-layers", "1"],
      [...mapping(8, 1, 2, 1, 2, 2), "--hash-layers", "1", "--score-function", "sqrtsoftplus", "--expert-bias", "--aux-loss", "none", "--dispatcher", "allgather"],
      [...mapping(4, 2, 1, 1, 2), "--hash-layers", "2", "--quantile-balancing"],
      [...mapping(4, 1, 1, 2, 2), "--hash-layers", "2", "--sinkhorn", "--topk", "1"],
      [...mapping(4, 1, 1, 1, 4), "--hash-layers", "4", "--capacity-factor", "1.0", "--pad-to-capacity"],
    ]
    for (const flags of cases) {
      const r = await run(["verify", "--dtype", "float64", "--layers", "4", "--steps", "3", ...flags])
      expect(r.status, `${flags.join(" ")}: ${r.out}${r.err}`).toBe(0)
      expect(r.out, flags.join(" ")).toMatch(/: OK\n/)
    }
  }, 300_000)

  test("the expert bias of a hash layer stays 0; Megatron's name is the same run; the hash layers change the run", async () => {
    const sigmoid = ["--score-function", "sigmoid", "--expert-bias", "--aux-loss", "none", "--dtype", "float64"]
    const dir = fresh("hash-save")
    const hashed = stepLosses((await train([...sigmoid, "--hash-layers", "2", "--save", dir])).out)
    const step = readFileSync(path.join(dir, "latest"), "utf8").trim()
    const bias = JSON.parse(readFileSync(path.join(dir, step, "manifest.json"), "utf8")).expertBias as Record<string, ReadonlyArray<number>>
    // Layers 0 and 1 route by the table: no bias, no counts; layers 2 and 3 moved theirs.
    for (const layer of ["0", "1"]) expect((bias[layer] ?? []).every((b) => b === 0)).toBe(true)
    for (const layer of ["2", "3"]) expect(bias[layer]?.some((b) => b !== 0)).toBe(true)
    expect(stepLosses((await train(sigmoid)).out)).not.toEqual(hashed)
    // Megatron-LM's name (its defaults then apply to the rest, so both runs use one of its names).
    const megatron = ["--num-layers", "4", "--steps", "2", "--log", "json", "--seed", "5", "--num-experts", "8", "--moe-router-topk", "2"]
    const theirs = await run(["train", ...megatron, "--moe-n-hash-layers", "2"])
    const ours = await run(["train", ...megatron, "--hash-layers", "2"])
    expect(theirs.status, theirs.err).toBe(0)
    expect(stepLosses(theirs.out)).toEqual(stepLosses(ours.out))
  }, 120_000)

  test("a hash run's recording replays under another mapping: the same training", async () => {
    const dir = fresh("hash-replay")
    const flags = ["--dtype", "float64", "--hash-layers", "2"]
    const recorded = stepLosses((await train([...mapping(8, 2, 2, 2, 2), ...flags, "--routing-record", dir])).out)
    const replayed = stepLosses((await train([...mapping(4, 1, 2, 1, 4), ...flags, "--routing-replay", dir])).out)
    replayed.forEach((loss, i) => expect(Math.abs(loss - (recorded[i] as number)) / (recorded[i] as number)).toBeLessThan(1e-10))
  }, 120_000)

  test("--hash-layers 0 is refused with one line", () => {
    expect(refused(["train", "--hash-layers", "0"])).toContain("--hash-layers")
  })
})
