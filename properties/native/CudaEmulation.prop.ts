// The CUDA kernels' per-element work (cuda/src/kernels/ops_element.h: what each thread of the
// grid-stride kernels in ops.cu computes) run on the host by pleat_kernel_emulation, against the
// CPU kernels they twin: gatherRows, the MoE unpermute, AdamW, RoPE, the SwiGLU and RMSNorm
// backwards and the cross-entropy row sums and gradient bit for bit (the host's exp is the CPU
// kernels' std::exp; SwiGLU against the CPU's scalar kernel, the one that rounds once), the
// router's experts equal to Router.select's and its probs within one float ulp of probsFor's
// (Math.exp).
// So the kernels' indexing, order of operations and selection are tested on every machine;
// scripts/device-check runs the kernels themselves on the GPU machine (the device's exp, the
// launch shapes). The emulator is built with the CPU addon (cuda/CMakeLists.txt).
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import * as CpuCrossEntropy from "../../src/native/CpuCrossEntropy.js"
import * as CpuDispatch from "../../src/native/CpuDispatch.js"
import { ropeKernel } from "../../src/native/CpuElementwise.js"
import * as CpuOptional from "../../src/native/CpuOptional.js"
import { expected, routerCases } from "./routerCases.js"

const emulator = new URL("../../build/Release/pleat_kernel_emulation", import.meta.url).pathname
const built = existsSync(emulator)

type Part = Float32Array | Float64Array | Int32Array

/** Runs one op of the emulator; its reply cut into arrays of the given kinds and lengths. */
const emulate = (op: string, parts: ReadonlyArray<Part>, reply: ReadonlyArray<readonly ["f32" | "f64" | "i32", number]>): Array<Part> => {
  const run = spawnSync(emulator, [op], { input: Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))), maxBuffer: 1 << 28 })
  if (run.status !== 0) throw new Error(`pleat_kernel_emulation ${op} exited ${run.status}: ${run.stderr}`)
  const out = run.stdout
  let at = 0
  return reply.map(([kind, n]) => {
    const bytes = (kind === "f64" ? 8 : 4) * n
    const copy = out.buffer.slice(out.byteOffset + at, out.byteOffset + at + bytes)
    at += bytes
    return kind === "f32" ? new Float32Array(copy) : kind === "f64" ? new Float64Array(copy) : new Int32Array(copy)
  })
}

const floats = (n: number, seed: number) => {
  let s = seed >>> 0 || 1
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 8 - 4)
}

/** Elements more than one float ulp apart (two NaNs agree). */
const beyondOneUlp = (a: Float32Array, b: Float32Array): number => {
  const ia = new Int32Array(a.buffer, a.byteOffset, a.length)
  const ib = new Int32Array(b.buffer, b.byteOffset, b.length)
  let n = 0
  for (let i = 0; i < a.length; i++) if (!(Number.isNaN(a[i]) && Number.isNaN(b[i])) && Math.abs((ia[i] as number) - (ib[i] as number)) > 1) n++
  return n
}

const same = (a: Part, b: Part) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]))

describe.runIf(built)("the CUDA kernels' element functions on the host, against the CPU kernels", () => {
  test("RoPE: the CPU kernel's bits, shared or per-token tables, both signs", () => {
    const rope = ropeKernel()
    fc.assert(
      fc.property(
        fc.record({ b: fc.integer({ min: 1, max: 3 }), s: fc.integer({ min: 1, max: 40 }), heads: fc.integer({ min: 1, max: 4 }), half: fc.integer({ min: 1, max: 40 }) }),
        fc.boolean(),
        fc.constantFrom(1 as const, -1 as const),
        fc.integer(),
        ({ b, s, heads, half }, perToken, sign, seed) => {
          const d = 2 * half
          const tableRows = perToken ? b * s : s
          const x = floats(b * s * heads * d, seed)
          const cos = Float64Array.from(floats(tableRows * half, seed + 1), Math.cos)
          const sin = Float64Array.from(floats(tableRows * half, seed + 2), Math.sin)
          const want = new Float32Array(x.length)
          rope?.(x, cos, sin, want, { b, s, heads, d, tableRows }, sign)
          const [got] = emulate("rope", [Float64Array.of(b, s, heads, d, tableRows, sign), x, cos, sin], [["f32", x.length]])
          expect(same(got as Part, want)).toBe(true)
        },
      ),
      { numRuns: 30 },
    )
  })

  test("SwiGLU backward: the CPU kernel's bits", () => {
    const backward = CpuOptional.swigluBackwardKernel()
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer(), (n, seed) => {
        const [gate, up, grad] = [floats(n, seed), floats(n, seed + 1), floats(n, seed + 2)]
        const [dGate, dUp] = [new Float32Array(n), new Float32Array(n)]
        backward?.(gate, up, grad, dGate, dUp)
        const [g, u] = emulate(
          "swiglu_backward",
          [Float64Array.of(n), gate, up, grad],
          [
            ["f32", n],
            ["f32", n],
          ],
        )
        expect(same(g as Part, dGate) && same(u as Part, dUp)).toBe(true)
      }),
      { numRuns: 20 },
    )
  })

  test("RMSNorm backward: the CPU kernel's bits (dx and dw)", () => {
    const backward = CpuOptional.rmsnormBackwardKernel()
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 300 }), fc.integer(), (rows, cols, seed) => {
        const [x, w, g] = [floats(rows * cols, seed), floats(cols, seed + 1), floats(rows * cols, seed + 2)]
        const rstd = Float64Array.from(floats(rows, seed + 3), (v) => 1 / (1 + Math.abs(v)))
        const [dx, dw] = [new Float32Array(rows * cols), new Float64Array(cols)]
        backward?.(x, w, g, rstd, rows, cols, dx, dw)
        const [gotDx, gotDw] = emulate(
          "rmsnorm_backward",
          [Float64Array.of(rows, cols), x, w, g, rstd],
          [
            ["f32", rows * cols],
            ["f64", cols],
          ],
        )
        expect(same(gotDx as Part, dx) && same(gotDw as Part, dw)).toBe(true)
      }),
      { numRuns: 20 },
    )
  })

  test("cross-entropy row sums and gradient: the CPU kernels' bits, NaN rows and ignored targets included", () => {
    const ce = CpuCrossEntropy.crossEntropyKernels()
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 400 }), fc.integer(), (rows, cols, seed) => {
        const x = floats(rows * cols, seed)
        if (cols > 3) x[(seed >>> 0) % x.length] = Number.NaN
        const [max, sum] = [new Float64Array(rows), new Float64Array(rows)]
        ce?.rowMax(x, rows, cols, max)
        ce?.rowSumExp(x, rows, cols, max, sum)
        const logSum = sum.map((v, r) => (max[r] as number) + Math.log(v))
        const targets = Int32Array.from({ length: rows }, (_, r) => (r % 4 === 0 ? -1 : (r * 13 + (seed >>> 0)) % (cols + 2)))
        const d = new Float32Array(rows * cols)
        ce?.grad(x, rows, cols, logSum, targets, -1, 1, 0.5, d)
        const [gotSum, gotD] = emulate(
          "cross_entropy",
          [Float64Array.of(rows, cols, -1, 1, 0.5), x, max, logSum, targets],
          [
            ["f64", rows],
            ["f32", rows * cols],
          ],
        )
        expect(same(gotSum as Part, sum)).toBe(true)
        expect(beyondOneUlp(gotD as Float32Array, d)).toBe(0)
      }),
      { numRuns: 20 },
    )
  })

  test("router: Router.select's experts, probsFor's probs within one ulp (every mode, groups, bias, scaling)", () => {
    fc.assert(
      fc.property(routerCases(60), (c) => {
        const want = expected(c)
        const { topk, mode, numGroups, groupTopk, bias, scale } = c.spec
        const header = Float64Array.of(c.tokens, c.experts, topk, mode === "pre" ? 0 : mode === "post" ? 1 : 2, numGroups ?? 0, groupTopk ?? 0, bias ? 1 : 0, scale)
        const [indices, probs] = emulate(
          "router",
          [header, c.logits, ...(bias ? [bias] : [])],
          [
            ["i32", c.tokens * topk],
            ["f32", c.tokens * c.experts],
          ],
        )
        expect(same(indices as Part, want.indices)).toBe(true)
        expect(beyondOneUlp(probs as Float32Array, want.probs)).toBe(0)
      }),
      { numRuns: 40 },
    )
  })

  test("gatherRows: exact copies", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 200 }), fc.integer({ min: 1, max: 300 }), fc.integer(), (srcRows, n, cols, seed) => {
        const src = floats(srcRows * cols, seed)
        const index = Int32Array.from({ length: n }, (_, i) => (i * 7919 + (seed >>> 0)) % srcRows)
        const want = new Float32Array(n * cols)
        Cpu.gatherRows(src, index, want, cols)
        const [got] = emulate("gather_rows", [Float64Array.of(srcRows, n, cols), src, index], [["f32", n * cols]])
        expect(same(got as Part, want)).toBe(true)
      }),
      { numRuns: 20 },
    )
  })

  test("SwiGLU: the CPU's scalar kernel's bits (float64, rounded once; its vector paths round in float32)", () => {
    const before = Cpu.activeIsa()
    try {
      Cpu.setIsa("scalar")
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer(), (n, seed) => {
          const [gate, up] = [floats(n, seed), floats(n, seed + 1)]
          const want = new Float32Array(n)
          Cpu.swiglu(gate, up, want)
          const [got] = emulate("swiglu", [Float64Array.of(n), gate, up], [["f32", n]])
          expect(same(got as Part, want)).toBe(true)
        }),
        { numRuns: 20 },
      )
    } finally {
      Cpu.setIsa(before)
    }
  })

  test("combineRows (the MoE unpermute): the CPU dispatch kernel's bits, weighted or not", () => {
    const cpu = CpuDispatch.dispatchKernels()
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 200 }),
        fc.boolean(),
        fc.integer(),
        (tokens, k, cols, weighted, seed) => {
          const n = tokens * k
          const index = Int32Array.from({ length: n }, (_, j) => (j * 7919 + (seed >>> 0)) % tokens)
          const rows = floats(n * cols, seed)
          const weights = weighted ? floats(n, seed + 1) : undefined
          const want = new Float32Array(tokens * cols)
          cpu?.combineRows(rows, cols, index, weights ?? null, null, tokens, cols, want)
          // Each token's rows in increasing j, as the binding lists them (a stable counting sort).
          const offsets = new Int32Array(tokens + 1)
          for (const t of index) offsets[t + 1] = (offsets[t + 1] as number) + 1
          for (let t = 0; t < tokens; t++) offsets[t + 1] = (offsets[t + 1] as number) + (offsets[t] as number)
          const next = offsets.slice(0, tokens)
          const order = new Int32Array(n)
          index.forEach((t, j) => {
            order[next[t] as number] = j
            next[t] = (next[t] as number) + 1
          })
          const [got] = emulate(
            "combine_rows",
            [Float64Array.of(n, cols, tokens, cols, weighted ? 1 : 0), rows, offsets, order, ...(weights ? [weights] : [])],
            [["f32", tokens * cols]],
          )
          expect(same(got as Part, want)).toBe(true)
        },
      ),
      { numRuns: 20 },
    )
  })

  test("AdamW: the CPU kernel's bits (weights and both moments)", () => {
    const adamw = CpuOptional.adamwKernel()
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer(), fc.integer({ min: 1, max: 50 }), (n, seed, t) => {
        const s = { beta1: 0.9, beta2: 0.95, c1: 1 - 0.9 ** t, c2: 1 - 0.95 ** t, eps: 1e-8, lr: 3e-4, clip: 0.7, decay: 0.01 }
        const [w, g] = [floats(n, seed), floats(n, seed + 1)]
        const m = floats(n, seed + 2).map((v) => v / 10)
        const v = floats(n, seed + 3).map((x) => (x * x) / 10)
        const cpu = { w: Float32Array.from(w), m: Float32Array.from(m), v: Float32Array.from(v) }
        adamw?.(cpu.w, g, cpu.m, cpu.v, s)
        const [gw, gm, gv] = emulate(
          "adamw",
          [Float64Array.of(n, s.beta1, s.beta2, s.c1, s.c2, s.eps, s.lr, s.clip, s.decay), w, g, m, v],
          [
            ["f32", n],
            ["f32", n],
            ["f32", n],
          ],
        )
        expect(same(gw as Part, cpu.w) && same(gm as Part, cpu.m) && same(gv as Part, cpu.v)).toBe(true)
      }),
      { numRuns: 20 },
    )
  })

  test("an unknown op or a short request exits 2", () => {
    expect(spawnSync(emulator, ["nope"], { input: Buffer.alloc(0) }).status).toBe(2)
    expect(spawnSync(emulator, ["rope"], { input: Buffer.alloc(8) }).status).toBe(2)
  })
})
