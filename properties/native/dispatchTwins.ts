// The CUDA kernels of the MoE dispatch (cuda/src/kernels/ops_cuda.h permute_rows and
// combine_rows) and their CPU twins, the native dispatch kernels (cuda/src/kernels/dispatch.h), as
// kernelTwins.ts's cases: bit for bit on the host and on the device (copies, float32 products and
// adds in the CPU's order).
import fc from "fast-check"
import * as CpuDispatch from "../../src/native/CpuDispatch.js"
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

/** The dispatch twins, for both executors. */
export const dispatchTwins: ReadonlyArray<Runnable> = [runnable(permuteRows), runnable(combineRows)]
