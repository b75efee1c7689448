// GPT-OSS's MXFP4 experts on import (HfMxfp4): random blocks and scales dequantize to each FP4
// code times its block's power of two, in transformers' [E, in, out] (an independent reading
// here, and transformers' own convert_moe_packed_tensors where a Python with it is found); what is
// not MXFP4 as GPT-OSS stores it is refused naming the tensor; and `pleat import` of an exported
// GPT-OSS (every bias trained) whose experts are rewritten in MXFP4, as the release stores them,
// gives exactly the dequantized experts, gate and up taken apart.
import { spawnSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as HfMxfp4 from "../../src/train/HfMxfp4.js"
import * as Safetensors from "../../src/train/Safetensors.js"
import { fresh, run } from "../cli/cliRun.js"
import { python, sayIfSkipped } from "../cli/transformersPython.js"
import { rng } from "../tensor/gradcheck.js"
import { writeSafetensors } from "./safetensorsBytes.js"

const refuse = (reason: string, fix: string) => ConfigError.make("--model-dir", "dir", reason, fix)

/** E2M1 by its bits: sign, two exponent bits of bias 1, one mantissa bit; exponent 0 is subnormal (0 or 0.5). */
const e2m1 = (code: number): number => {
  const sign = code & 8 ? -1 : 1
  const exponent = (code >> 1) & 3
  const mantissa = code & 1
  return sign * (exponent === 0 ? mantissa * 0.5 : (1 + mantissa / 2) * 2 ** (exponent - 1))
}

interface Packed {
  readonly e: number
  readonly rows: number
  readonly groups: number
  readonly blocks: Uint8Array
  readonly scales: Uint8Array
}

const packedOf = (e: number, rows: number, groups: number, seed: number, scaleFrom = 117, scaleTo = 137): Packed => {
  const next = rng(seed)
  return {
    e,
    rows,
    groups,
    blocks: Uint8Array.from({ length: e * rows * groups * 16 }, () => Math.floor(next() * 256)),
    scales: Uint8Array.from({ length: e * rows * groups }, () => scaleFrom + Math.floor(next() * (scaleTo - scaleFrom + 1))),
  }
}

const read = (p: Packed): Map<string, Safetensors.Lazy> =>
  Safetensors.lazily(
    new Map([
      ["w_blocks", { dtype: "U8", shape: [p.e, p.rows, p.groups, 16], values: Float64Array.from(p.blocks) }],
      ["w_scales", { dtype: "U8", shape: [p.e, p.rows, p.groups], values: Float64Array.from(p.scales) }],
    ]),
  )

/** The stored rows [E, out, in] element by element (element k of a row: byte k / 2 of its block, the low nibble when k is even), then [E, in, out]. */
const independent = (p: Packed): Float64Array => {
  const cols = p.groups * 32
  const rowsFirst = new Float64Array(p.e * p.rows * cols)
  for (let r = 0; r < p.e * p.rows; r++)
    for (let k = 0; k < cols; k++) {
      const block = r * p.groups + Math.floor(k / 32)
      const byte = p.blocks[block * 16 + Math.floor((k % 32) / 2)] as number
      rowsFirst[r * cols + k] = e2m1(k % 2 === 0 ? byte & 15 : byte >> 4) * 2 ** ((p.scales[block] as number) - 127)
    }
  const out = new Float64Array(rowsFirst.length)
  for (let x = 0; x < p.e; x++) for (let o = 0; o < p.rows; o++) for (let i = 0; i < cols; i++) out[(x * cols + i) * p.rows + o] = rowsFirst[(x * p.rows + o) * cols + i] as number
  return out
}

describe("MXFP4 dequantization", () => {
  test("the E2M1 codes are the table's, and every element is its code times its block's 2^(s - 127), transposed to [E, in, out]; a slab of experts is theirs alone", () => {
    expect(HfMxfp4.fp4Values.map((v, c) => Object.is(v, e2m1(c)))).toEqual(new Array(16).fill(true))
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 1e6 }), (e, rows, groups, seed) => {
        const p = packedOf(e, rows, groups, seed)
        const got = HfMxfp4.dequantized(read(p), refuse)
        expect([...got.keys()]).toEqual(["w"])
        expect(got.get("w")?.shape).toEqual([e, groups * 32, rows])
        const all = independent(p)
        expect(Array.from(got.get("w")?.values() ?? [])).toEqual(Array.from(all))
        const expert = groups * 32 * rows
        const first = seed % e
        const count = Math.floor(seed / e) % (e - first + 1)
        expect(Array.from(got.get("w")?.slab(first, count) ?? [])).toEqual(Array.from(all.subarray(first * expert, (first + count) * expert)))
      }),
      { numRuns: 60 },
    )
  })

  test("transformers' convert_moe_packed_tensors gives the same values", () => {
    sayIfSkipped("MXFP4 dequantization")
    if (python === undefined) return
    const p = packedOf(2, 3, 2, 7, 100, 150)
    const script = [
      "import sys, json, torch",
      "from transformers.integrations.mxfp4 import convert_moe_packed_tensors",
      "d = json.loads(sys.stdin.read())",
      "blocks = torch.tensor(d['blocks'], dtype=torch.uint8).reshape(2, 3, 2, 16)",
      "scales = torch.tensor(d['scales'], dtype=torch.uint8).reshape(2, 3, 2)",
      "print(json.dumps(convert_moe_packed_tensors(blocks, scales, dtype=torch.float32).double().flatten().tolist()))",
    ].join("\n")
    const r = spawnSync(python, ["-c", script], { input: JSON.stringify({ blocks: Array.from(p.blocks), scales: Array.from(p.scales) }), encoding: "utf8" })
    expect(r.status, r.stderr).toBe(0)
    const theirs = JSON.parse(r.stdout.trim().split("\n").at(-1) as string) as Array<number>
    expect(Array.from(HfMxfp4.dequantized(read(p), refuse).get("w")?.values() ?? [])).toEqual(theirs)
  })

  test("what is not MXFP4 as GPT-OSS stores it is refused naming the tensor", () => {
    const p = read(packedOf(1, 2, 1, 3))
    const without = (name: string) => new Map([...p].filter(([n]) => n !== name))
    expect(() => HfMxfp4.dequantized(without("w_scales"), refuse)).toThrow("holds w_blocks without w_scales")
    expect(() => HfMxfp4.dequantized(without("w_blocks"), refuse)).toThrow("holds w_scales without its w_blocks")
    const bf16 = new Map(p).set("w_blocks", { ...(p.get("w_blocks") as Safetensors.Lazy), dtype: "BF16" })
    expect(() => HfMxfp4.dequantized(bf16, refuse)).toThrow("holds w_blocks as BF16 and w_scales as U8, where MXFP4 stores bytes (U8)")
    const short = new Map(p).set(
      "w_scales",
      Safetensors.slabsOf("U8", [1, 3, 1], () => new Float64Array(3)),
    )
    expect(() => HfMxfp4.dequantized(short, refuse)).toThrow("holds w_blocks [1, 2, 1, 16] with w_scales [1, 3, 1], where MXFP4 pairs [E, out, G, 16] with [E, out, G]")
  })
})

/** `values` [E, in, out] as MXFP4 (blocks [E, out, in / 32, 16], scales [E, out, in / 32]): each block's scale from its largest magnitude, codes nearest. */
const quantized = (values: Float64Array, e: number, ins: number, outs: number): { blocks: Uint8Array; scales: Uint8Array; dequantized: Float64Array } => {
  const groups = ins / 32
  const blocks = new Uint8Array(e * outs * groups * 16)
  const scales = new Uint8Array(e * outs * groups)
  const dequantized = new Float64Array(values.length)
  for (let x = 0; x < e; x++)
    for (let o = 0; o < outs; o++)
      for (let g = 0; g < groups; g++) {
        const at = (x * outs + o) * groups + g
        const element = (k: number) => (x * ins + g * 32 + k) * outs + o
        const largest = Math.max(...Array.from({ length: 32 }, (_, k) => Math.abs(values[element(k)] as number)))
        const exponent = largest === 0 ? 0 : Math.ceil(Math.log2(largest / 6))
        scales[at] = exponent + 127
        for (let k = 0; k < 32; k++) {
          const target = (values[element(k)] as number) / 2 ** exponent
          const code = HfMxfp4.fp4Values.reduce((best, v, c) => (Math.abs(v - target) < Math.abs((HfMxfp4.fp4Values[best] as number) - target) ? c : best), 0)
          blocks[at * 16 + (k >> 1)] = (blocks[at * 16 + (k >> 1)] as number) | (k % 2 === 0 ? code : code << 4)
          dequantized[element(k)] = (HfMxfp4.fp4Values[code] as number) * 2 ** exponent
        }
      }
  return { blocks, scales, dequantized }
}

describe("pleat import of GPT-OSS's MXFP4 release layout", () => {
  test("gives exactly the dequantized experts, gate and up apart, and the biases as stored", async () => {
    const flags = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--layers", "2", "--hidden", "32", "--heads", "4", "--seq", "8", "--global-batch", "2"]
    const gptOss = ["--quick-geglu", "--glu-linear-offset", "1", "--activation-func-clamp-value", "7", "--softmax-type", "learnable", "--add-bias-linear", "--router-bias"]
    const ckpt = fresh("mxfp4")
    expect((await run(["train", ...flags, ...gptOss, "--moe-ffn", "64", "--vocab", "40", "--steps", "2", "--save", ckpt])).status).toBe(0)
    const hf = path.join(fresh("mxfp4-hf"), "model")
    expect((await run(["export", "--checkpoint", ckpt, "--out", hf, "--format", "gpt-oss", "--dtype", "float32"])).status).toBe(0)
    const tensors = Safetensors.read(readFileSync(path.join(hf, "model.safetensors")))
    const expected = new Map<string, Float64Array>()
    const entries = [...tensors].flatMap(([name, t]): Array<{ name: string; dtype: string; shape: ReadonlyArray<number>; bytes: Uint8Array }> => {
      if (!/experts\.(gate_up|down)_proj$/.test(name)) return [{ name, dtype: "F32", shape: t.shape, bytes: new Uint8Array(Float32Array.from(t.values).buffer) }]
      const [e, ins, outs] = t.shape as [number, number, number]
      const q = quantized(t.values, e, ins, outs)
      expected.set(name, q.dequantized)
      return [
        { name: `${name}_blocks`, dtype: "U8", shape: [e, outs, ins / 32, 16], bytes: q.blocks },
        { name: `${name}_scales`, dtype: "U8", shape: [e, outs, ins / 32], bytes: q.scales },
      ]
    })
    expect(expected.size).toBe(4)
    writeSafetensors(path.join(hf, "model.safetensors"), entries)
    const configFile = path.join(hf, "config.json")
    const config = JSON.parse(readFileSync(configFile, "utf8")) as Record<string, unknown>
    writeFileSync(
      configFile,
      JSON.stringify({
        ...config,
        quantization_config: { quant_method: "mxfp4", modules_to_not_convert: ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"] },
      }),
    )
    const back = path.join(fresh("mxfp4-back"), "ckpt")
    const r = await run(["import", "--model-dir", hf, "--out", back, "--dtype", "float64"])
    expect(r.status, r.err).toBe(0)
    const values = Checkpoint.values(back).values
    const original = Checkpoint.values(ckpt).values
    for (const l of [0, 1]) {
      const gateUp = expected.get(`model.layers.${l}.mlp.experts.gate_up_proj`) as Float64Array
      const gate = Tensor.toArray(values.get(`layers.${l}.experts.wGate`) as Tensor.Tensor)
      const up = Tensor.toArray(values.get(`layers.${l}.experts.wUp`) as Tensor.Tensor)
      expect(gate).toEqual(Array.from(gateUp.filter((_, k) => k % 2 === 0)))
      expect(up).toEqual(Array.from(gateUp.filter((_, k) => k % 2 === 1)))
      expect(Tensor.toArray(values.get(`layers.${l}.experts.wDown`) as Tensor.Tensor)).toEqual(Array.from(expected.get(`model.layers.${l}.mlp.experts.down_proj`) as Float64Array))
      // Quantized, not copied: the experts moved; their biases did not (as stored, in float32).
      expect(gate).not.toEqual(Tensor.toArray(original.get(`layers.${l}.experts.wGate`) as Tensor.Tensor))
      for (const b of ["experts.bGate", "experts.bDown", "routerBias", "bo"])
        expect(Tensor.toArray(values.get(`layers.${l}.${b}`) as Tensor.Tensor)).toEqual(
          Array.from(Float32Array.from(Tensor.toArray(original.get(`layers.${l}.${b}`) as Tensor.Tensor))),
        )
    }
  }, 60_000)
})
