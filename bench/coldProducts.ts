/**
 * coldProducts: the tensor suite's small products whose weight comes from memory, as in
 * training, where everything a micro-batch touches between two uses of a weight evicts it from
 * the caches: the default model's [16, 256] x [256, 256] products (x W and g W^T) and its grouped
 * expert GEMMs (8 experts of 4 rows, [256, 32] weights: forward, the input gradients of the up
 * and down projections, and the weight gradient added into its accumulator). Each call takes the next of enough weights (or
 * accumulators) to fill 64 MiB, so that operand comes from memory every time.
 *
 * value: the bytes that operand moves (a weight read once; an accumulator read and written)
 * over the call's time, GB/s; limit: memcpyBandwidth of 64 MiB measured in the same run (read +
 * write, from memory), the rate at which memory delivers bytes at all. The hot row (the same
 * operand every call, in the caches) is the product's own arithmetic and packing: its ratio
 * above the cold one is what the trip to memory costs.
 */
import * as Cpu from "../dist/native/Cpu.js"
import * as CpuOptional from "../dist/native/CpuOptional.js"
import { type BenchContext, type BenchRecord, filled, measure, record } from "./harness.js"
import { memcpyBandwidth } from "./limits.js"

const span = 64 * 2 ** 20

interface Product {
  readonly name: string
  /** Floats of the operand that comes from memory (a weight, or a gradient accumulator). */
  readonly weight: number
  /** Times each of its bytes moves per call: 1 read, or 2 (read, then written). */
  readonly moves: 1 | 2
  readonly run: (w: Float32Array) => void
}

const products = (): ReadonlyArray<Product> => {
  const x = filled(16 * 256, 1)
  const out = new Float32Array(16 * 256)
  const dense: Array<Product> = [
    {
      name: "matmul 16x256x256 (x W)",
      weight: 256 * 256,
      moves: 1,
      run: (w) => Cpu.matmul({ a: x, b: w, out, batch: 1, m: 16, n: 256, k: 256, transA: false, transB: false, strideA: 0, strideB: 0, accumulate: false }),
    },
    {
      name: "matmul 16x256x256 (g W^T)",
      weight: 256 * 256,
      moves: 1,
      run: (w) => Cpu.matmul({ a: x, b: w, out, batch: 1, m: 16, n: 256, k: 256, transA: false, transB: true, strideA: 0, strideB: 0, accumulate: false }),
    },
  ]
  const grouped = CpuOptional.groupedMatmulKernels()
  if (grouped === undefined) return dense
  const experts = 8
  const rows = new Int32Array(experts).fill(4)
  const xe = filled(experts * 4 * 256, 2)
  const ge = filled(experts * 4 * 32, 3)
  const ye = new Float32Array(experts * 4 * 32)
  const dx = new Float32Array(experts * 4 * 256)
  return [
    ...dense,
    { name: "grouped 8 x 4x256x32 (x W_e)", weight: experts * 256 * 32, moves: 1, run: (w) => grouped.rows(xe, w, ye, rows, 256, 32, false) },
    { name: "grouped 8 x 4x32x256 (g W_e^T)", weight: experts * 256 * 32, moves: 1, run: (w) => grouped.rows(ge, w, dx, rows, 32, 256, true) },
    // The down projection's input gradient: 32 columns of out, B read in place (matmul.cc).
    { name: "grouped 8 x 4x256x32 (g W_down^T)", weight: experts * 256 * 32, moves: 1, run: (w) => grouped.rows(xe, w, ye, rows, 256, 32, true) },
    { name: "grouped 8 x 256x4x32 (dW_e += x^T g)", weight: experts * 256 * 32, moves: 2, run: (w) => grouped.weights(xe, ge, w, rows, 256, 32, true) },
  ]
}

/**
 * The cold and hot rows of every product, on one thread.
 * @category benchmarks
 */
export const coldProductRecords = async (ctx: BenchContext): Promise<Array<BenchRecord>> => {
  const out: Array<BenchRecord> = []
  const before = Cpu.threads()
  Cpu.setThreads(1)
  try {
    ctx.log("small products with B from memory ...")
    const limit = await memcpyBandwidth(span)
    for (const p of products()) {
      const count = Math.ceil(span / (4 * p.weight))
      const weights = Array.from({ length: count }, (_, i) => filled(p.weight, 10 + i))
      let next = 0
      const cold = await measure(`${p.name} cold`, () => p.run(weights[next++ % count] as Float32Array), { time: 250, warmupTime: 50 })
      const first = weights[0] as Float32Array
      const hot = await measure(`${p.name} hot`, () => p.run(first), { time: 250, warmupTime: 50 })
      const bytes = 4 * p.weight * p.moves
      const metric = `${p.moves === 1 ? "weight read" : "accumulator read + written"} (1 thread)`
      out.push(record(ctx, { case: `${p.name}, from memory`, metric, value: bytes / cold / 1e9, unit: "GB/s", limit }))
      out.push(record(ctx, { case: `${p.name}, in cache`, metric, value: bytes / hot / 1e9, unit: "GB/s", limit }))
    }
  } finally {
    Cpu.setThreads(before)
  }
  return out
}
