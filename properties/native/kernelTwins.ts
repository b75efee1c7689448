// The CUDA kernels and their CPU twins, as cases one check runs on either executor: "device"
// (the kernels on a GPU, Cuda.deviceOps) or "host" (their per-element functions run on the host
// by pleat_kernel_emulation, cuda/src/kernels/ops_element.h). Each twin makes random inputs,
// computes the CPU kernel's result and compares: bit for bit where no exp is involved, and on
// the host also where one is (the host's std::exp is the CPU kernels'); within one float ulp
// (cross-entropy sums within 1e-14) on the device, whose exp may differ in its last bit. The
// router's twin is TypeScript's Router (Math.exp: within one ulp on both).
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import fc from "fast-check"
import { expect } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import * as CpuCrossEntropy from "../../src/native/CpuCrossEntropy.js"
import * as CpuElementwise from "../../src/native/CpuElementwise.js"
import * as CpuOptional from "../../src/native/CpuOptional.js"
import * as Cuda from "../../src/native/Cuda.js"
import { expected, type RouterCase, routerCases } from "./routerCases.js"

export type Executor = "device" | "host"

/** One kernel and its CPU twin. */
export interface Twin<C> {
  readonly name: string
  readonly cases: (on: Executor) => fc.Arbitrary<C>
  /** Runs case c on `on` and expects the CPU's result. */
  readonly check: (c: C, on: Executor) => void
}

const emulator = new URL("../../build/Release/pleat_kernel_emulation", import.meta.url).pathname

/** Whether pleat_kernel_emulation is built. */
export const emulatorBuilt = existsSync(emulator)

export type Part = Float32Array | Float64Array | Int32Array

/** Runs one op of the emulator; its reply cut into arrays of the given kinds and lengths. */
export const emulate = (op: string, parts: ReadonlyArray<Part>, reply: ReadonlyArray<readonly ["f32" | "f64" | "i32", number]>): Array<Part> => {
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

/** Deterministic floats in [-4, 4). */
export const floats = (n: number, seed: number): Float32Array => {
  let s = seed >>> 0 || 1
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 8 - 4)
}

/** Elements more than one float ulp apart (two NaNs, whatever their bits, agree). */
export const beyondOneUlp = (a: Float32Array, b: Float32Array): number => {
  const ia = new Int32Array(a.buffer, a.byteOffset, a.length)
  const ib = new Int32Array(b.buffer, b.byteOffset, b.length)
  let n = 0
  for (let i = 0; i < a.length; i++) if (!(Number.isNaN(a[i]) && Number.isNaN(b[i])) && Math.abs((ia[i] as number) - (ib[i] as number)) > 1) n++
  return n
}

export const expectSame = (got: Part, want: Part) => expect(got.length === want.length && got.every((v, i) => Object.is(v, want[i]))).toBe(true)
/** Bit for bit on the host; within one ulp on the device (its exp's last bit). */
export const expectTwin = (got: Float32Array, want: Float32Array, on: Executor) => (on === "host" ? expectSame(got, want) : expect(beyondOneUlp(got, want)).toBe(0))

/** Runs `f` with the CPU kernels pinned to their scalar paths (which round once from float64, as the device does). */
export const scalar = <A>(f: () => A): A => {
  const before = Cpu.activeIsa()
  Cpu.setIsa("scalar")
  try {
    return f()
  } finally {
    Cpu.setIsa(before)
  }
}

export const device = () => Cuda.deviceOps()
export const big = (on: Executor, host: number, dev: number) => (on === "host" ? host : dev)

const gatherRows: Twin<{ srcRows: number; n: number; cols: number; seed: number }> = {
  name: "gatherRows: exact copies",
  cases: (on) =>
    fc.record({
      srcRows: fc.integer({ min: 1, max: 300 }),
      n: fc.integer({ min: 0, max: big(on, 200, 600) }),
      cols: fc.integer({ min: 1, max: big(on, 300, 2100) }),
      seed: fc.integer(),
    }),
  check: ({ srcRows, n, cols, seed }, on) => {
    const src = floats(srcRows * cols, seed)
    const index = Int32Array.from({ length: n }, (_, i) => (i * 7919 + (seed >>> 0)) % srcRows)
    const want = new Float32Array(n * cols)
    Cpu.gatherRows(src, index, want, cols)
    const got = new Float32Array(n * cols)
    if (on === "device") device().gatherRows(src, index, got, cols)
    else got.set(emulate("gather_rows", [Float64Array.of(srcRows, n, cols), src, index], [["f32", n * cols]])[0] as Float32Array)
    expectSame(got, want)
  },
}

const softmaxRows: Twin<{ rows: number; cols: number; seed: number }> = {
  name: "softmaxRows: the CPU's scalar path (float64 exponentials and sum; within one float ulp on the device)",
  cases: (on) => fc.record({ rows: fc.integer({ min: 0, max: big(on, 40, 3000) }), cols: fc.integer({ min: 1, max: big(on, 70, 300) }), seed: fc.integer() }),
  check: ({ rows, cols, seed }, on) => {
    // Spread logits (some rows' maxima far above the rest) so the exponentials span many binades.
    const x = floats(rows * cols, seed).map((v, i) => v * (1 + (i % 7)))
    const want = new Float32Array(rows * cols)
    scalar(() => Cpu.softmaxRows(x, want, rows, cols))
    const got = new Float32Array(rows * cols)
    if (on === "device") device().softmaxRows(x, got, rows, cols)
    else got.set(emulate("softmax_rows", [Float64Array.of(rows, cols), x], [["f32", rows * cols]])[0] as Float32Array)
    expectTwin(got, want, on)
  },
}

const swiglu: Twin<{ n: number; seed: number }> = {
  name: "swiglu: the CPU's scalar kernel (float64 rounded once, as the device; the vector paths round each float32 step)",
  cases: (on) => fc.record({ n: fc.integer({ min: 1, max: big(on, 5000, 1 << 20) }), seed: fc.integer() }),
  check: ({ n, seed }, on) => {
    const [gate, up] = [floats(n, seed), floats(n, seed + 1)]
    const want = new Float32Array(n)
    scalar(() => Cpu.swiglu(gate, up, want))
    const got = new Float32Array(n)
    if (on === "device") device().swiglu(gate, up, got)
    else got.set(emulate("swiglu", [Float64Array.of(n), gate, up], [["f32", n]])[0] as Float32Array)
    expectTwin(got, want, on)
  },
}

const swigluBackward: Twin<{ n: number; seed: number; which: number }> = {
  name: "swigluBackward: either gradient alone or both",
  cases: (on) => fc.record({ n: fc.integer({ min: 1, max: big(on, 5000, 1 << 20) }), seed: fc.integer(), which: fc.integer({ min: 0, max: 2 }) }),
  check: ({ n, seed, which }, on) => {
    const [gate, up, grad] = [floats(n, seed), floats(n, seed + 1), floats(n, seed + 2)]
    const [wantGate, wantUp] = [new Float32Array(n), new Float32Array(n)]
    CpuOptional.swigluBackwardKernel()?.(gate, up, grad, wantGate, wantUp)
    if (on === "host") {
      const [g, u] = emulate(
        "swiglu_backward",
        [Float64Array.of(n), gate, up, grad],
        [
          ["f32", n],
          ["f32", n],
        ],
      )
      expectTwin(g as Float32Array, wantGate, on)
      expectTwin(u as Float32Array, wantUp, on)
      return
    }
    const dGate = which !== 1 ? new Float32Array(n) : undefined
    const dUp = which !== 0 ? new Float32Array(n) : undefined
    device().swigluBackward(gate, up, grad, dGate, dUp)
    if (dGate !== undefined) expectTwin(dGate, wantGate, on)
    if (dUp !== undefined) expectTwin(dUp, wantUp, on)
  },
}

const rmsnormBackward: Twin<{ rows: number; cols: number; seed: number; which: number }> = {
  name: "rmsnormBackward: the CPU kernel's bits (dx, dw, either alone)",
  cases: (on) =>
    fc.record({
      rows: fc.integer({ min: 1, max: big(on, 40, 300) }),
      cols: fc.integer({ min: 1, max: big(on, 300, 2100) }),
      seed: fc.integer(),
      which: fc.integer({ min: 0, max: 2 }),
    }),
  check: ({ rows, cols, seed, which }, on) => {
    const [x, w, g] = [floats(rows * cols, seed), floats(cols, seed + 1), floats(rows * cols, seed + 2)]
    const rstd = Float64Array.from(floats(rows, seed + 3), (v) => 1 / (1 + Math.abs(v)))
    const [dx, dw] = [new Float32Array(rows * cols), new Float64Array(cols)]
    CpuOptional.rmsnormBackwardKernel()?.(x, w, g, rstd, rows, cols, dx, dw)
    if (on === "host") {
      const [gotDx, gotDw] = emulate(
        "rmsnorm_backward",
        [Float64Array.of(rows, cols), x, w, g, rstd],
        [
          ["f32", rows * cols],
          ["f64", cols],
        ],
      )
      expectSame(gotDx as Part, dx)
      expectSame(gotDw as Part, dw)
      return
    }
    const gotDx = which !== 1 ? new Float32Array(rows * cols) : undefined
    const gotDw = which !== 0 ? new Float64Array(cols) : undefined
    device().rmsnormBackward(x, w, g, rstd, rows, cols, gotDx, gotDw)
    if (gotDx !== undefined) expectSame(gotDx, dx)
    if (gotDw !== undefined) expectSame(gotDw, dw)
  },
}

const rope: Twin<{ b: number; s: number; heads: number; half: number; perToken: boolean; sign: 1 | -1; seed: number }> = {
  name: "ropeRotate: the CPU kernel's bits, shared or per-token tables, both signs",
  cases: (on) =>
    fc.record({
      b: fc.integer({ min: 1, max: 3 }),
      s: fc.integer({ min: 1, max: big(on, 40, 300) }),
      heads: fc.integer({ min: 1, max: big(on, 4, 8) }),
      half: fc.integer({ min: 1, max: 64 }),
      perToken: fc.boolean(),
      sign: fc.constantFrom(1 as const, -1 as const),
      seed: fc.integer(),
    }),
  check: ({ b, s, heads, half, perToken, sign, seed }, on) => {
    const d = 2 * half
    const tableRows = perToken ? b * s : s
    const x = floats(b * s * heads * d, seed)
    const cos = Float64Array.from(floats(tableRows * half, seed + 1), Math.cos)
    const sin = Float64Array.from(floats(tableRows * half, seed + 2), Math.sin)
    const dims = { b, s, heads, d, tableRows }
    const want = new Float32Array(x.length)
    CpuElementwise.ropeKernel()?.(x, cos, sin, want, dims, sign)
    const got = new Float32Array(x.length)
    if (on === "device") device().ropeRotate(x, cos, sin, got, dims, sign)
    else got.set(emulate("rope", [Float64Array.of(b, s, heads, d, tableRows, sign), x, cos, sin], [["f32", x.length]])[0] as Float32Array)
    expectSame(got, want)
  },
}

const crossEntropy: Twin<{ rows: number; cols: number; seed: number }> = {
  name: "cross-entropy row kernels: the sums (and on the device the maxima) and the gradient, NaN rows and ignored targets included",
  cases: (on) => fc.record({ rows: fc.integer({ min: 1, max: big(on, 40, 200) }), cols: fc.integer({ min: 1, max: big(on, 400, 5000) }), seed: fc.integer() }),
  check: ({ rows, cols, seed }, on) => {
    const ce = CpuCrossEntropy.crossEntropyKernels()
    const x = floats(rows * cols, seed).map((v) => v * 3)
    if (cols > 3) x[(seed >>> 0) % x.length] = Number.NaN // a NaN row: NaN through max, sum and grad
    const targets = Int32Array.from({ length: rows }, (_, r) => (r % 5 === 0 ? -1 : (r * 7919 + (seed >>> 0)) % (cols + 3)))
    const want = { max: new Float64Array(rows), sum: new Float64Array(rows), d: new Float32Array(rows * cols) }
    ce?.rowMax(x, rows, cols, want.max)
    ce?.rowSumExp(x, rows, cols, want.max, want.sum)
    const logSum = want.sum.map((v, r) => (want.max[r] as number) + Math.log(v))
    ce?.grad(x, rows, cols, logSum, targets, -1, 2, 0.25, want.d)
    if (on === "host") {
      const [sum, d] = emulate(
        "cross_entropy",
        [Float64Array.of(rows, cols, -1, 2, 0.25), x, want.max, logSum, targets],
        [
          ["f64", rows],
          ["f32", rows * cols],
        ],
      )
      expectSame(sum as Part, want.sum)
      expectSame(d as Part, want.d)
      return
    }
    const got = { max: new Float64Array(rows), sum: new Float64Array(rows), d: new Float32Array(rows * cols) }
    device().crossEntropy.rowMax(x, rows, cols, got.max)
    expectSame(got.max, want.max)
    device().crossEntropy.rowSumExp(x, rows, cols, want.max, got.sum)
    got.sum.forEach((v, r) =>
      Number.isNaN(want.sum[r] as number) ? expect(v).toBeNaN() : expect(Math.abs(v - (want.sum[r] as number))).toBeLessThanOrEqual(1e-14 * (want.sum[r] as number)),
    )
    device().crossEntropy.grad(x, rows, cols, logSum, targets, -1, 2, 0.25, got.d)
    expectTwin(got.d, want.d, on)
  },
}

const adamw: Twin<{ n: number; seed: number; t: number }> = {
  name: "adamw: the CPU kernel's bits (weights and both moments)",
  cases: (on) => fc.record({ n: fc.integer({ min: 1, max: big(on, 5000, 1 << 19) }), seed: fc.integer(), t: fc.integer({ min: 1, max: 50 }) }),
  check: ({ n, seed, t }, on) => {
    const s = { beta1: 0.9, beta2: 0.95, c1: 1 - 0.9 ** t, c2: 1 - 0.95 ** t, eps: 1e-8, lr: 3e-4, clip: 0.7, decay: 0.01 }
    const [w, g] = [floats(n, seed), floats(n, seed + 1)]
    const m = floats(n, seed + 2).map((v) => v / 10)
    const v = floats(n, seed + 3).map((x) => (x * x) / 10)
    const cpu = { w: Float32Array.from(w), m: Float32Array.from(m), v: Float32Array.from(v) }
    CpuOptional.adamwKernel()?.(cpu.w, g, cpu.m, cpu.v, s)
    const got = { w: Float32Array.from(w), m: Float32Array.from(m), v: Float32Array.from(v) }
    if (on === "device") device().adamw(got.w, g, got.m, got.v, s)
    else {
      const [gw, gm, gv] = emulate(
        "adamw",
        [Float64Array.of(n, s.beta1, s.beta2, s.c1, s.c2, s.eps, s.lr, s.clip, s.decay), w, g, m, v],
        [
          ["f32", n],
          ["f32", n],
          ["f32", n],
        ],
      )
      got.w.set(gw as Float32Array)
      got.m.set(gm as Float32Array)
      got.v.set(gv as Float32Array)
    }
    expectSame(got.w, cpu.w)
    expectSame(got.m, cpu.m)
    expectSame(got.v, cpu.v)
  },
}

const router: Twin<RouterCase> = {
  name: "router: Router.select's experts, probsFor's probs within one ulp (every mode, groups, bias, scaling)",
  cases: (on) => routerCases(big(on, 60, 300)),
  check: (c, on) => {
    const want = expected(c)
    const { topk, mode, numGroups, groupTopk, bias, scale } = c.spec
    const [indices, probs] = [new Int32Array(c.tokens * topk), new Float32Array(c.tokens * c.experts)]
    if (on === "device") device().router(c.logits, c, c.spec, indices, probs)
    else {
      const header = Float64Array.of(c.tokens, c.experts, topk, { pre: 0, post: 1, sigmoid: 2, sqrtsoftplus: 3 }[mode], numGroups ?? 0, groupTopk ?? 0, bias ? 1 : 0, scale)
      const [i, p] = emulate(
        "router",
        [header, c.logits, ...(bias ? [bias] : [])],
        [
          ["i32", c.tokens * topk],
          ["f32", c.tokens * c.experts],
        ],
      )
      indices.set(i as Int32Array)
      probs.set(p as Float32Array)
    }
    expectSame(indices, want.indices)
    expect(beyondOneUlp(probs, want.probs)).toBe(0)
  },
}

/** A twin ready to run: `numRuns` random cases on one executor. */
export interface Runnable {
  readonly name: string
  readonly run: (on: Executor, numRuns: number) => void
}

export const runnable = <C>(t: Twin<C>): Runnable => ({
  name: t.name,
  run: (on, numRuns) =>
    fc.assert(
      fc.property(t.cases(on), (c) => t.check(c, on)),
      { numRuns },
    ),
})

/** Every twin, in one list for both executors. */
export const twins: ReadonlyArray<Runnable> = [
  runnable(gatherRows),
  runnable(softmaxRows),
  runnable(swiglu),
  runnable(swigluBackward),
  runnable(rmsnormBackward),
  runnable(rope),
  runnable(crossEntropy),
  runnable(adamw),
  runnable(router),
]
