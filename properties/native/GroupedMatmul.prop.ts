// Properties of the native grouped expert GEMM (cuda/src/kernels/grouped_matmul.h): bit for bit
// the products of one native matmul per group (tensor/kernels/GroupedLoop.ts), forward rows,
// transposed rows and weight gradients with and without accumulation, empty groups included, on
// every ISA with 1 and 2 threads and on sizes that take each of its threading paths (one thread; a
// pool task per group, for many rows or for few rows over large weights; each product on the
// pool). Bad arguments throw before writing.
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import * as CpuOptional from "../../src/native/CpuOptional.js"
import * as GroupedLoop from "../../src/tensor/kernels/GroupedLoop.js"
import { configs, pin, random, unpin } from "./tensorCases.js"

const grouped = CpuOptional.groupedMatmulKernels()
const loopRows = GroupedLoop.groupedRows((p) => Cpu.matmul(p as Cpu.MatmulArgs))
const loopWeights = GroupedLoop.groupedWeights((p) => Cpu.matmul(p as Cpu.MatmulArgs))

const filled = (n: number, seed: number) => {
  const rng = random(seed)
  return Float32Array.from({ length: n }, () => rng())
}

interface Case {
  readonly rows: ReadonlyArray<number>
  readonly k: number
  readonly n: number
  readonly seed: number
}

const small: fc.Arbitrary<Case> = fc.record({
  rows: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 9 }),
  k: fc.integer({ min: 1, max: 80 }),
  n: fc.integer({ min: 1, max: 80 }),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
})

// Over the 2^22 multiply-adds where the kernel uses the pool: balanced groups (a task per group)
// and one dominant group (each product on the pool); and few rows over weights of 512 KiB or more
// in all (a task per group below 2^22: the products are bound by reading the weights).
const large: ReadonlyArray<Case> = [
  { rows: [150, 0, 140, 160, 150], k: 128, n: 96, seed: 7 },
  { rows: [700, 3, 0, 5], k: 96, n: 64, seed: 11 },
  { rows: [5, 3, 0, 6, 2, 4, 9, 3], k: 512, n: 48, seed: 13 },
]

const checkCase = (c: Case) => {
  const rows = Int32Array.from(c.rows)
  const total = c.rows.reduce((a, b) => a + b, 0)
  const groups = c.rows.length
  const x = filled(total * c.k, c.seed)
  const w = filled(groups * c.k * c.n, c.seed + 1)
  const dy = filled(total * c.n, c.seed + 2)
  const pair = (size: number) => [new Float32Array(size).fill(Number.NaN), new Float32Array(size).fill(Number.NaN)] as const
  // forward: x [N, k] x w[g] [k, n]
  const [fwd, fwdLoop] = pair(total * c.n)
  grouped?.rows(x, w, fwd, rows, c.k, c.n, false)
  loopRows(x, w, fwdLoop, rows, c.k, c.n, false)
  expect(fwd).toEqual(fwdLoop)
  // backward rows: dy [N, n] x w[g]^T (w[g] stored [k, n] = n' x k' with n' = k, k' = n)
  const [dx, dxLoop] = pair(total * c.k)
  grouped?.rows(dy, w, dx, rows, c.n, c.k, true)
  loopRows(dy, w, dxLoop, rows, c.n, c.k, true)
  expect(dx).toEqual(dxLoop)
  // weight gradients, fresh (empty groups zeroed) and accumulated into a non-zero start
  const [dw, dwLoop] = pair(groups * c.k * c.n)
  grouped?.weights(x, dy, dw, rows, c.k, c.n, false)
  loopWeights(x, dy, dwLoop, rows, c.k, c.n, false)
  expect(dw).toEqual(dwLoop)
  const start = filled(groups * c.k * c.n, c.seed + 3)
  const acc = Float32Array.from(start)
  const accLoop = Float32Array.from(start)
  grouped?.weights(x, dy, acc, rows, c.k, c.n, true)
  loopWeights(x, dy, accLoop, rows, c.k, c.n, true)
  expect(acc).toEqual(accLoop)
  c.rows.forEach((r, g) => {
    if (r === 0) {
      expect(Array.from(dw.subarray(g * c.k * c.n, (g + 1) * c.k * c.n)).every((v) => v === 0)).toBe(true)
      expect(acc.subarray(g * c.k * c.n, (g + 1) * c.k * c.n)).toEqual(start.subarray(g * c.k * c.n, (g + 1) * c.k * c.n))
    }
  })
}

describe("the native grouped GEMM is built", () => {
  test("pleat_cpu.node exports groupedRows and groupedWeights", () => {
    expect(grouped).toBeDefined()
  })
})

describe.each(configs)("grouped GEMM on %s, %d thread(s)", (isa, threads) => {
  afterAll(unpin)

  test("equals one matmul per group, bit for bit (random small groups)", () => {
    pin(isa, threads)
    fc.assert(fc.property(small, checkCase), { numRuns: 25 })
  })

  test("equals one matmul per group on the pooled paths (balanced and dominant groups)", () => {
    pin(isa, threads)
    for (const c of large) checkCase(c)
  })
})

describe("grouped GEMM argument errors", () => {
  const rows = Int32Array.from([1, 2])
  test("a negative group is a RangeError naming it, and out is untouched", () => {
    const out = new Float32Array(3 * 2).fill(5)
    expect(() => grouped?.rows(new Float32Array(3 * 4), new Float32Array(2 * 4 * 2), out, Int32Array.from([4, -1]), 4, 2, false)).toThrow(
      "groupedRows: rows[1] is -1, must be 0 or more",
    )
    expect(Array.from(out)).toEqual(new Array(6).fill(5))
  })
  test("lengths that disagree with the groups are RangeErrors naming the operand", () => {
    expect(() => grouped?.rows(new Float32Array(3 * 4), new Float32Array(2 * 4 * 2), new Float32Array(5), rows, 4, 2, false)).toThrow(
      "groupedRows: out has 5 elements, expected N * n = 6",
    )
    expect(() => grouped?.weights(new Float32Array(3 * 4), new Float32Array(3 * 2), new Float32Array(2 * 4 * 2 - 1), rows, 4, 2, false)).toThrow(
      "groupedWeights: out has 15 elements, expected G * m * n = 16",
    )
    expect(() => grouped?.weights(new Float32Array(2 * 4), new Float32Array(3 * 2), new Float32Array(16), rows, 4, 2, false)).toThrow(
      "groupedWeights: a has 8 elements, expected N * m = 12",
    )
  })
  test("an output overlapping an input is a TypeError", () => {
    const shared = new Float32Array(64)
    expect(() => grouped?.rows(shared.subarray(0, 12), new Float32Array(16), shared.subarray(8, 14), rows, 4, 2, false)).toThrow(
      "groupedRows: out and a must not overlap in memory",
    )
  })
})
