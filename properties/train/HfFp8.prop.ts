// FP8 checkpoints on import: E4M3 bytes decode to their values (known points, order, and every
// one of the 256 codes as PyTorch's float8_e4m3fn where a Python with torch is found); block-wise
// dequantization multiplies each element by its block's scale, blocks that do not divide the
// dimensions included; what is not the Hub's block-wise FP8 is refused naming the tensor or key;
// and `pleat import` of an exported model rewritten in FP8 (its linear weights as E4M3 codes with
// block scales, as the Hub's -FP8 releases) gives exactly the dequantized weights.
import { spawnSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { writeSafetensors } from "./safetensorsBytes.js"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as HfFp8 from "../../src/train/HfFp8.js"
import * as Safetensors from "../../src/train/Safetensors.js"
import { fresh, run } from "../cli/cliRun.js"
import { python, sayIfSkipped } from "../cli/transformersPython.js"
import { rng } from "../tensor/gradcheck.js"

const refuse = (reason: string, fix: string) => ConfigError.make("--model-dir", "dir", reason, fix)

/** Every finite E4M3 value by code (NaN codes left out), for nearest-value quantization. */
const codes = Array.from({ length: 256 }, (_, b) => b).filter((b) => !Number.isNaN(Safetensors.e4m3Value(b)))

/** The code nearest to `x` (within E4M3's range). */
const nearest = (x: number): number => codes.reduce((best, b) => (Math.abs(Safetensors.e4m3Value(b) - x) < Math.abs(Safetensors.e4m3Value(best) - x) ? b : best), 0)

describe("FP8 E4M3", () => {
  test("known values, NaN at S.1111.111, and the positive codes in increasing order", () => {
    expect([0x00, 0x01, 0x07, 0x08, 0x38, 0x40, 0x7e, 0xb8, 0xfe].map(Safetensors.e4m3Value)).toEqual([0, 2 ** -9, 7 * 2 ** -9, 2 ** -6, 1, 2, 448, -1, -448])
    expect(Number.isNaN(Safetensors.e4m3Value(0x7f))).toBe(true)
    expect(Number.isNaN(Safetensors.e4m3Value(0xff))).toBe(true)
    for (let b = 1; b < 0x7f; b++) expect(Safetensors.e4m3Value(b)).toBeGreaterThan(Safetensors.e4m3Value(b - 1))
    for (let b = 0; b < 0x80; b++) expect(Object.is(Safetensors.e4m3Value(b | 0x80), -Safetensors.e4m3Value(b)) || b === 0x7f).toBe(true)
  })

  test("every code is PyTorch's float8_e4m3fn", () => {
    sayIfSkipped("FP8 E4M3 codes")
    if (python === undefined) return
    const script = "import torch, json; print(json.dumps([None if v != v else v for v in torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).double().tolist()]))"
    const r = spawnSync(python, ["-c", script], { encoding: "utf8" })
    expect(r.status, r.stderr).toBe(0)
    const theirs = JSON.parse(r.stdout.trim().split("\n").at(-1) as string) as Array<number | null>
    theirs.forEach((v, b) => expect(v === null ? Number.isNaN(Safetensors.e4m3Value(b)) : Safetensors.e4m3Value(b) === v, `code ${b}`).toBe(true))
  })
})

describe("block-wise dequantization", () => {
  test("each element times its block's scale, partial blocks included", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 1e6 }),
        (rows, cols, bo, bi, seed) => {
          const next = rng(seed)
          const w = Float64Array.from({ length: rows * cols }, () => Safetensors.e4m3Value(codes[Math.floor(next() * codes.length)] as number))
          const [sr, sc] = [Math.ceil(rows / bo), Math.ceil(cols / bi)]
          const s = Float64Array.from({ length: sr * sc }, () => 0.001 + next())
          const tensors = new Map<string, Safetensors.Read>([
            ["a.weight", { dtype: "F8_E4M3", shape: [rows, cols], values: w }],
            ["a.weight_scale_inv", { dtype: "F32", shape: [sr, sc], values: s }],
            ["a.norm", { dtype: "BF16", shape: [cols], values: new Float64Array(cols).fill(1) }],
          ])
          const out = HfFp8.dequantized(Safetensors.lazily(tensors), { quant_method: "fp8", fmt: "e4m3", weight_block_size: [bo, bi] }, refuse)
          expect([...out.keys()].sort()).toEqual(["a.norm", "a.weight"])
          // Block by block: every element of block (p, q) scaled by s[p, q].
          const got = out.get("a.weight")?.values() as Float64Array
          for (let p = 0; p < sr; p++)
            for (let q = 0; q < sc; q++)
              for (let i = p * bo; i < Math.min(rows, (p + 1) * bo); i++)
                for (let j = q * bi; j < Math.min(cols, (q + 1) * bi); j++) expect(got[i * cols + j]).toBe((w[i * cols + j] as number) * (s[p * sc + q] as number))
          // A slab of rows is those rows alone, wherever it starts and ends within the blocks.
          const first = seed % rows
          const count = Math.floor(seed / rows) % (rows - first + 1)
          expect(Array.from(out.get("a.weight")?.slab(first, count) ?? [])).toEqual(Array.from(got.subarray(first * cols, (first + count) * cols)))
        },
      ),
    )
  })

  test("what is not the Hub's block-wise FP8 is refused naming the tensor or key", () => {
    const weight = Safetensors.slabsOf("F8_E4M3", [4, 4], () => new Float64Array(16))
    const scales = Safetensors.slabsOf("F32", [1, 1], () => new Float64Array(1))
    const both = new Map([
      ["w", weight],
      ["w_scale_inv", scales],
    ])
    const fp8 = { quant_method: "fp8", fmt: "e4m3", weight_block_size: [4, 4] }
    expect(() => HfFp8.dequantized(both, undefined, refuse)).toThrow("holds FP8 tensors (w) but config.json declares no quantization_config")
    expect(() => HfFp8.dequantized(both, { ...fp8, quant_method: "gptq" }, refuse)).toThrow("is quantized with quant_method gptq")
    expect(() => HfFp8.dequantized(both, { ...fp8, fmt: "e5m2" }, refuse)).toThrow("holds FP8 of fmt e5m2")
    expect(() => HfFp8.dequantized(new Map([["w", weight]]), fp8, refuse)).toThrow("holds w in FP8 without w_scale_inv")
    expect(() => HfFp8.dequantized(both, { ...fp8, weight_block_size: [2, 2] }, refuse)).toThrow(
      "holds w_scale_inv of shape [1, 1] for w [4, 4], where blocks of 2 x 2 make it [2, 2]",
    )
    expect(() => HfFp8.dequantized(new Map([["v_scale_inv", scales]]), fp8, refuse)).toThrow("holds v_scale_inv for a weight that is not FP8")
  })
})

describe("pleat import of an FP8 checkpoint", () => {
  test("gives exactly the dequantized weights", async () => {
    const flags = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "2", "--vocab", "40"]
    const ckpt = fresh("fp8")
    expect((await run(["train", ...flags, "--steps", "1", "--save", ckpt])).status).toBe(0)
    const hf = path.join(fresh("fp8-hf"), "model")
    expect((await run(["export", "--checkpoint", ckpt, "--out", hf, "--format", "mixtral", "--dtype", "float32"])).status).toBe(0)
    // Attention and expert matrices in E4M3 with 8 x 8 blocks (16 x 16 weights: 2 x 2 scales); the rest as they were.
    const tensors = Safetensors.read(readFileSync(path.join(hf, "model.safetensors")))
    const expected = new Map<string, Float64Array>()
    const entries = [...tensors].flatMap(([name, t]) => {
      const asIs = { name, dtype: "F32", shape: t.shape, bytes: new Uint8Array(Float32Array.from(t.values).buffer) }
      if (!/(self_attn\.[qkvo]_proj|experts\.\d+\.w[123])\.weight$/.test(name)) return [asIs]
      const [rows, cols] = t.shape as [number, number]
      const [sr, sc] = [Math.ceil(rows / 8), Math.ceil(cols / 8)]
      const blockMax = new Float64Array(sr * sc)
      t.values.forEach((v, k) => {
        const at = Math.floor(Math.floor(k / cols) / 8) * sc + Math.floor((k % cols) / 8)
        blockMax[at] = Math.max(blockMax[at] as number, Math.abs(v))
      })
      const scale = Float32Array.from(blockMax, (m) => (m === 0 ? 1 : m / 448))
      const bytes = Uint8Array.from(t.values, (v, k) => nearest(v / (scale[Math.floor(Math.floor(k / cols) / 8) * sc + Math.floor((k % cols) / 8)] as number)))
      expected.set(
        name,
        Float64Array.from(bytes, (b, k) => Safetensors.e4m3Value(b) * (scale[Math.floor(Math.floor(k / cols) / 8) * sc + Math.floor((k % cols) / 8)] as number)),
      )
      return [
        { name, dtype: "F8_E4M3", shape: t.shape, bytes },
        { name: `${name}_scale_inv`, dtype: "F32", shape: [sr, sc], bytes: new Uint8Array(scale.buffer) },
      ]
    })
    writeSafetensors(path.join(hf, "model.safetensors"), entries)
    const configFile = path.join(hf, "config.json")
    const config = JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>
    writeFileSync(configFile, JSON.stringify({ ...config, quantization_config: { quant_method: "fp8", fmt: "e4m3", activation_scheme: "dynamic", weight_block_size: [8, 8] } }))
    const back = path.join(fresh("fp8-back"), "ckpt")
    const r = await run(["import", "--model-dir", hf, "--out", back, "--dtype", "float64"])
    expect(r.status, r.err).toBe(0)
    // Each quantized weight comes back as its dequantized values (pleat's [in, out]: transposed).
    const values = Checkpoint.values(back).values
    const wq = Tensor.toArray(values.get("layers.0.wq") as Tensor.Tensor)
    const hfWq = expected.get("model.layers.0.self_attn.q_proj.weight") as Float64Array
    const [outs, ins] = (tensors.get("model.layers.0.self_attn.q_proj.weight") as Safetensors.Read).shape as [number, number]
    for (let o = 0; o < outs; o++) for (let i = 0; i < ins; i++) expect(wq[i * outs + o]).toBe(hfWq[o * ins + i])
    expect(expected.size).toBeGreaterThan(8)
  }, 60_000)
})
