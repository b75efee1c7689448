// The dispatch kernels on rows that lie in several buffers (cuda/src/dispatch_sources_binding.cc):
// combineRowsFrom and gatherRowsFrom over rows spread across sources give the bits combineRows and
// a gather give over the same rows in one buffer, on every ISA; bad arguments are typed errors
// raised before anything is written.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import { dispatchKernels } from "../../src/native/CpuDispatch.js"
import { floats } from "./kernelTwins.js"

const k = dispatchKernels()

/** Rows [n, cols] cut into `parts` buffers at the given cut points; each row's (source, row). */
const spread = (rows: Float32Array, n: number, cols: number, cuts: ReadonlyArray<number>) => {
  const edges = [0, ...[...new Set(cuts.map((c) => c % (n + 1)))].sort((a, b) => a - b), n]
  const sources: Array<Float32Array> = []
  const source = new Int32Array(n)
  const row = new Int32Array(n)
  for (let s = 0; s + 1 < edges.length; s++) {
    const [from, to] = [edges[s] as number, edges[s + 1] as number]
    sources.push(rows.slice(from * cols, to * cols))
    for (let r = from; r < to; r++) {
      source[r] = s
      row[r] = r - from
    }
  }
  return { sources, source, row }
}

describe.runIf(k !== undefined)("dispatch kernels over several buffers", () => {
  test("combineRowsFrom and gatherRowsFrom equal combineRows and a gather over one buffer, every ISA", () => {
    const kernels = k as NonNullable<typeof k>
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 150 }),
        fc.integer({ min: 1, max: 9 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        fc.integer(),
        (n, cols, tokens, cuts, seed) => {
          const rows = floats(n * cols, seed)
          const index = Int32Array.from({ length: n }, (_, r) => (r * 7 + (seed >>> 0)) % tokens)
          const { sources, source, row } = spread(rows, n, cols, cuts)
          const before = Cpu.activeIsa()
          try {
            for (const isa of ["scalar", before] as const) {
              Cpu.setIsa(isa)
              // Without weights and with them (the MoE combine weighting each row by its prob).
              for (const weights of [null, floats(n, seed + 1)]) {
                const [want, got] = [new Float32Array(tokens * cols), new Float32Array(tokens * cols)]
                kernels.combineRows(rows, cols, index, weights, null, tokens, cols, want)
                kernels.combineRowsFrom(sources, source, row, index, weights, tokens, cols, got)
                expect(Array.from(got)).toEqual(Array.from(want))
              }
              const gathered = new Float32Array(n * cols)
              kernels.gatherRowsFrom(sources, source, row, cols, gathered)
              expect(Array.from(gathered)).toEqual(Array.from(rows))
            }
          } finally {
            Cpu.setIsa(before)
          }
        },
      ),
      { numRuns: 60 },
    )
  })

  test("bad sources, rows and indices are typed errors naming the argument", () => {
    const kernels = k as NonNullable<typeof k>
    const a = new Float32Array(6)
    const out = new Float32Array(4)
    expect(() => kernels.gatherRowsFrom([new Float64Array(2) as unknown as Float32Array], Int32Array.of(0), Int32Array.of(0), 2, new Float32Array(2))).toThrow(
      /sources\[0\] must be a Float32Array/,
    )
    expect(() => kernels.gatherRowsFrom([a], Int32Array.of(1), Int32Array.of(0), 2, new Float32Array(2))).toThrow(/source\[0\] = 1 is out of range \[0, 1\)/)
    expect(() => kernels.gatherRowsFrom([a], Int32Array.of(0), Int32Array.of(3), 2, new Float32Array(2))).toThrow(/sourceRow\[0\] = 3 is out of range \[0, 3\)/)
    expect(() => kernels.combineRowsFrom([a], Int32Array.of(0, 0), Int32Array.of(0, 1), Int32Array.of(0, 2), null, 2, 2, out)).toThrow(/index\[1\] = 2 is out of range/)
    expect(() => kernels.combineRowsFrom([out], Int32Array.of(0), Int32Array.of(0), Int32Array.of(0), null, 2, 2, out)).toThrow(TypeError)
    expect(() => kernels.combineRowsFrom([a], Int32Array.of(0), Int32Array.of(0), Int32Array.of(0), new Float32Array(2), 2, 2, out)).toThrow(/weights/)
    expect(Array.from(out)).toEqual([0, 0, 0, 0])
  })
})
