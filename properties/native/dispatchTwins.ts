// The CUDA kernels of the MoE dispatch (cuda/src/kernels/ops_cuda.h permute_rows, combine_rows
// and combine_backward, and the scatter-add of rows) and their CPU twins, the native dispatch kernels (cuda/src/kernels/dispatch.h), as
// kernelTwins.ts's cases: bit for bit on the host and on the device (copies, float32 products and
// adds in the CPU's order).
import fc from "fast-check"
import * as Cpu from "../../src/native/Cpu.js"
import * as CpuDispatch from "../../src/native/CpuDispatch.js"
import { cudaArrays } from "../../src/native/CudaArrays.js"
import { big, device, emulate, expectSame, floats, type Part, type Runnable, runnable, type Twin } from "./kernelTwins.js"

const permuteRows: Twin<{ srcRows: number; n: number; cols: number; experts: number; column: boolean; probsOut: boolean; seed: number }> = {
  name: "permuteRows (the MoE permute): the CPU dispatch kernel's bits, with a prob column and / or probsOut",
  cases: (on) =>
    fc
      .record({
        srcRows: fc.integer({ min: 1, max: 300 }),
        n: fc.integer({ min: 0, max: big(on, 200, 600) }),
        cols: fc.integer({ min: 0, max: big(on, 300, 2100) }),
        experts: fc.integer({ min: 1, max: 16 }),
        column: fc.boolean(),
        probsOut: fc.boolean(),
        seed: fc.integer(),
      })
      .filter((c) => c.cols > 0 || c.column || c.probsOut),
  check: ({ srcRows, n, cols, experts, column, probsOut, seed }, on) => {
    const k = CpuDispatch.dispatchKernels()
    if (k === undefined) return
    const withProbs = column || probsOut
    const outCols = column ? cols + 1 : cols
    const src = floats(srcRows * cols, seed)
    const index = Int32Array.from({ length: n }, (_, i) => (i * 7919 + (seed >>> 0)) % srcRows)
    const probs = floats(srcRows * experts, seed + 1)
    const expert = Int32Array.from({ length: n }, (_, i) => (i * 31 + (seed >>> 3)) % experts)
    const [want, wantProbs] = [new Float32Array(n * outCols), new Float32Array(n)]
    k.permuteRows(src, cols, index, want, outCols, withProbs ? probs : null, withProbs ? expert : null, experts, probsOut ? wantProbs : null)
    const [got, gotProbs] = [new Float32Array(n * outCols), new Float32Array(n)]
    if (on === "device")
      device().permuteRows(src, cols, index, got, outCols, withProbs ? { probs, experts: expert, numExperts: experts, probsOut: probsOut ? gotProbs : undefined } : undefined)
    else {
      const parts: Array<Part> = [Float64Array.of(srcRows, n, cols, outCols, withProbs ? experts : 0), src, index]
      if (withProbs) parts.push(probs, expert)
      const reply = emulate("permute_rows", parts, [
        ["f32", n * outCols],
        ["f32", withProbs ? n : 0],
      ])
      got.set(reply[0] as Float32Array)
      if (probsOut) gotProbs.set(reply[1] as Float32Array)
    }
    expectSame(got, want)
    expectSame(gotProbs, wantProbs)
  },
}

const combineRows: Twin<{ tokens: number; k: number; cols: number; weighted: boolean; seed: number }> = {
  name: "combineRows (the MoE unpermute): the CPU dispatch kernel's bits, weighted or not",
  cases: (on) =>
    fc.record({
      tokens: fc.integer({ min: 1, max: big(on, 100, 600) }),
      k: fc.integer({ min: 1, max: 8 }),
      cols: fc.integer({ min: 1, max: big(on, 200, 1100) }),
      weighted: fc.boolean(),
      seed: fc.integer(),
    }),
  check: ({ tokens, k, cols, weighted, seed }, on) => {
    const n = tokens * k
    const index = Int32Array.from({ length: n }, (_, j) => (j * 7919 + (seed >>> 0)) % tokens)
    const rows = floats(n * cols, seed)
    const weights = weighted ? floats(n, seed + 1) : undefined
    const want = new Float32Array(tokens * cols)
    CpuDispatch.dispatchKernels()?.combineRows(rows, cols, index, weights ?? null, null, tokens, cols, want)
    const got = new Float32Array(tokens * cols)
    if (on === "device") device().combineRows(rows, cols, index, weights, tokens, cols, got)
    else {
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
      const parts = [Float64Array.of(n, cols, tokens, cols, weighted ? 1 : 0), rows, offsets, order, ...(weights ? [weights] : [])]
      got.set(emulate("combine_rows", parts, [["f32", tokens * cols]])[0] as Float32Array)
    }
    expectSame(got, want)
  },
}

/** x with about a quarter of its entries +0 or -0: where a product's sign of zero shows. */
const withZeros = (x: Float32Array, seed: number): Float32Array =>
  x.map((v, i) => {
    const pick = (Math.imul(i + 1, 2654435761) ^ seed) >>> 29
    return pick === 0 ? 0 : pick === 1 ? -0 : v
  })

/**
 * g [T, cols] and rows [N, cols] with a quarter of the odd columns c cancelling: column c - 1
 * scaled by 2^20 in both, column c a copy of it in g and its negative in rows, so each row's
 * products hold a pair +-B 2^40 above the rest. Summing across B drops the low bits of what was
 * summed before it, so the order of the float64 sum shows in the float32 result (with values
 * in [-4, 4) alone the sum is exact in float64 whatever the order, and an order bug would pass).
 */
const cancelling = (g: Float32Array, rows: Float32Array, cols: number, seed: number) => {
  for (let c = 1; c < cols; c += 2) {
    if ((Math.imul(c + 1, 2246822519) ^ seed) >>> 30 !== 0) continue
    for (const [x, sign] of [
      [g, 1],
      [rows, -1],
    ] as const)
      for (let at = c; at < x.length; at += cols) {
        x[at - 1] = (x[at - 1] as number) * 2 ** 20
        x[at] = sign * (x[at - 1] as number)
      }
  }
}

/** v most of the time, else `often` (an edge a uniform draw would seldom reach). */
const sometimes = (often: number, v: fc.Arbitrary<number>) => fc.oneof({ arbitrary: fc.constant(often), weight: 1 }, { arbitrary: v, weight: 4 })

const combineBackward: Twin<{ tokens: number; n: number; cols: number; gradRows: boolean; gradWeights: boolean; seed: number }> = {
  name: "combineBackward (the MoE unpermute's backward): the CPU dispatch kernel's bits, with and without each output",
  cases: (on) =>
    fc.record({
      // Fewer tokens than rows for the most part, so tokens repeat in index.
      tokens: fc.integer({ min: 1, max: 40 }),
      n: sometimes(0, fc.integer({ min: 0, max: big(on, 120, 4000) })),
      // One column is the CPU's special case (the product itself, not a float64 sum from +0).
      cols: sometimes(1, fc.integer({ min: 1, max: big(on, 70, 2100) })),
      gradRows: fc.boolean(),
      gradWeights: fc.boolean(),
      seed: fc.integer(),
    }),
  check: ({ tokens, n, cols, gradRows, gradWeights, seed }, on) => {
    const k = CpuDispatch.dispatchKernels()
    if (k === undefined) return
    const g = withZeros(floats(tokens * cols, seed), seed)
    const index = Int32Array.from(floats(n, seed + 1), (v) => Math.floor(((v + 4) / 8) * tokens))
    const weights = withZeros(floats(n, seed + 2), seed + 2)
    const rows = withZeros(floats(n * cols, seed + 3), seed + 3)
    cancelling(g, rows, cols, seed)
    const outputs = () => [gradRows ? new Float32Array(n * cols) : null, gradWeights ? new Float32Array(n) : null] as const
    const want = outputs()
    k.combineBackward(g, index, cols, weights, rows, want[0], want[1])
    let got: ReadonlyArray<Float32Array | null>
    if (on === "device") {
      const out = outputs()
      device().combineBackward(g, index, cols, weights, rows, out[0], out[1])
      got = out
    } else {
      const reply = emulate(
        "combine_backward",
        [Float64Array.of(tokens, n, cols, gradRows ? 1 : 0, gradWeights ? 1 : 0), g, index, weights, rows],
        [
          ["f32", gradRows ? n * cols : 0],
          ["f32", gradWeights ? n : 0],
        ],
      )
      got = [gradRows ? (reply[0] as Float32Array) : null, gradWeights ? (reply[1] as Float32Array) : null]
    }
    want.forEach((w, i) => {
      if (w !== null) expectSame(got[i] ?? new Float32Array(0), w)
    })
  },
}

const scatterAddRows: Twin<{ n: number; targets: number; cols: number; seed: number }> = {
  name: "scatterAddRows (the embedding's and the permute's gradients): the CPU's bits, added onto out's values, rows without sources untouched",
  cases: (on) =>
    fc.record({
      n: fc.integer({ min: 0, max: big(on, 200, 3000) }),
      targets: fc.integer({ min: 1, max: big(on, 60, 2000) }),
      cols: fc.integer({ min: 1, max: big(on, 200, 1100) }),
      seed: fc.integer(),
    }),
  check: ({ n, targets, cols, seed }, on) => {
    const src = floats(n * cols, seed)
    // Skewed targets: some rows get many sources, most none.
    const index = Int32Array.from({ length: n }, (_, i) => ((i * i + (seed >>> 0)) % targets) % Math.max(1, targets >> 2))
    const start = floats(targets * cols, seed + 1)
    const want = Float32Array.from(start)
    Cpu.scatterAddRows(src, index, want, cols)
    let got: Float32Array
    if (on === "host") got = emulate("scatter_add_rows", [Float64Array.of(n, targets, cols), src, index, start], [["f32", targets * cols]])[0] as Float32Array
    else {
      const a = cudaArrays()
      if ("why" in a) throw new Error(a.why)
      got = Float32Array.from(start)
      a.addon.scatterAddRows(src, index, got, cols)
    }
    expectSame(got, want)
  },
}

/** The dispatch twins, for both executors. */
export const dispatchTwins: ReadonlyArray<Runnable> = [runnable(permuteRows), runnable(combineRows), runnable(combineBackward), runnable(scatterAddRows)]
