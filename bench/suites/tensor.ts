/**
 * tensor: the native float32 tensor kernels against this machine's limits, measured in this run.
 *
 *   matmul MxKxN, T thread(s): GFLOP/s (2 m n k per call) vs fmaPeak(T), the FMA probe on T
 *     threads. Square 256..2048 and the MoE expert shapes 4096 tokens x 1024 hidden -> 2816 ffn
 *     (up / gate projection) and 4096 x 2816 -> 1024 (down projection).
 *   matmulBf16 MxKxN, T thread(s): the bf16 GEMM (AVX512-BF16, VDPBF16PS) on bf16-valued inputs,
 *     GFLOP/s vs the same fmaPeak(T) (the fp32 FMA peak); its own ceiling is twice that, since
 *     VDPBF16PS does two multiply-adds per lane where an FMA does one: the target column. Shapes
 *     with an fp32 row beside them (512^3, 1024^3, 4096x1024x2816); absent without AVX512-BF16.
 *   openblas MxKxN: the same through OpenBLAS's cblas_sgemm when libopenblas.so.0 is installed
 *     (dlopen'ed, never linked); otherwise one log line says it is absent.
 *   gatherRows / scatterAddRows ROWSxCOLS: GB/s counting rows * cols * 4 bytes read + the same
 *     written + the int32 index, vs memcpyBandwidth(rows * cols * 4) (also read + write).
 *   softmaxRows / rmsnormRows ROWSxCOLS: GB/s of x read + out written, vs the same memcpy.
 *   swiglu and the gated activation with GPT-OSS's options (quick-GELU, offset 1, clamp 7;
 *     kernels/gated_activation.h), forward and backward, on ROWSxCOLS elements: GB/s of the
 *     inputs read and the outputs written (gate, up, out: 3x; gate, up, grad, dgate, dup: 5x),
 *     vs the same memcpy.
 *   small products with B from memory / in cache (bench/coldProducts.ts): B's bytes per second
 *     on one thread vs memcpyBandwidth of 64 MiB.
 *   async: matmulAsync latency vs matmul latency for small sizes (limit = the sync latency
 *     measured here, a floor, so ratio - 1 is the relative cost); the fixed overhead (no limit:
 *     nothing measured bounds it); and the measured crossover where the async path pays, with
 *     the tuned threshold Cpu.ASYNC_MIN_FLOPS as its target (a setting, not a ceiling).
 * Memory-bound kernels run on the default pool (all cores) and on 1 thread; memcpy is the C
 * library's single-threaded copy.
 */
import { Bench } from "tinybench"
import * as Cpu from "../../dist/native/Cpu.js"
import * as CpuBf16 from "../../dist/native/CpuBf16.js"
import * as CpuOptional from "../../dist/native/CpuOptional.js"
import * as Bf16Round from "../../dist/tensor/kernels/Bf16Round.js"
import { coldProductRecords } from "../coldProducts.js"
import { type BenchContext, type BenchRecord, batchFor, filled, gbPerSecond, measure, record } from "../harness.js"
import { fmaPeak, memcpyBandwidth } from "../limits.js"

// Mean seconds per call for slow calls: tinybench's default minimum of 64 iterations would take
// minutes for a 20-GFLOP product, so at least `iterations` calls and `time` ms after one warmup.
const measureSlow = async (name: string, fn: () => void, iterations = 3, time = 300): Promise<number> => {
  const bench = new Bench({ name, time, iterations, warmupIterations: 1, warmupTime: 0, throws: true })
  bench.add(name, fn)
  await bench.run()
  const result = bench.tasks[0]?.result
  if (result?.state !== "completed") throw new Error(`bench task ${name} did not complete`)
  return result.latency.mean / 1000
}

interface Shape {
  readonly m: number
  readonly k: number
  readonly n: number
}

const shapes: ReadonlyArray<Shape> = [...[256, 512, 1024, 2048].map((s) => ({ m: s, k: s, n: s })), { m: 4096, k: 1024, n: 2816 }, { m: 4096, k: 2816, n: 1024 }]

const label = (s: Shape): string => `${s.m}x${s.k}x${s.n}`

/** The backward's products of the expert GEMM: dX = dY W^T (B transposed), dW = X^T dY (A transposed). */
const transposed: ReadonlyArray<{ readonly shape: Shape; readonly transA: boolean; readonly transB: boolean; readonly name: string }> = [
  { shape: { m: 4096, k: 2816, n: 1024 }, transA: false, transB: true, name: "4096x2816x1024 B^T" },
  { shape: { m: 1024, k: 4096, n: 2816 }, transA: true, transB: false, name: "1024x4096x2816 A^T" },
]

const matmulArgs = (s: Shape): Cpu.MatmulArgs => ({
  a: filled(s.m * s.k, 1),
  b: filled(s.k * s.n, 2),
  out: new Float32Array(s.m * s.n),
  batch: 1,
  m: s.m,
  n: s.n,
  k: s.k,
  transA: false,
  transB: false,
  strideA: 0,
  strideB: 0,
  accumulate: false,
})

const timeMatmul = async (name: string, args: Cpu.MatmulArgs, run: (p: Cpu.MatmulArgs) => void): Promise<number> => {
  const flops = Cpu.matmulFlops(args)
  const seconds = flops < 2e8 ? await measure(name, () => run(args), { time: 200, warmupTime: 50 }) : await measureSlow(name, () => run(args))
  return flops / seconds / 1e9
}

const bf16Shapes: ReadonlyArray<Shape> = [
  { m: 512, k: 512, n: 512 },
  { m: 1024, k: 1024, n: 1024 },
  { m: 4096, k: 1024, n: 2816 },
]

/** The bf16 GEMM rows (see the header) on `threads`, against `peak`, the fp32 FMA peak. */
const bf16Records = async (ctx: BenchContext, threads: number, peak: number, metric: string): Promise<Array<BenchRecord>> => {
  const kernel = CpuBf16.bf16MatmulKernel()
  if (kernel === undefined) {
    ctx.log("matmulBf16: this CPU has no AVX512-BF16 (or the build lacks the kernel); no bf16 rows")
    return []
  }
  const out: Array<BenchRecord> = []
  for (const s of bf16Shapes) {
    const args = matmulArgs(s)
    Bf16Round.roundInto(args.a, args.a)
    Bf16Round.roundInto(args.b, args.b)
    ctx.log(`matmulBf16 ${label(s)} on ${threads} thread(s) ...`)
    const value = await timeMatmul(`matmulBf16 ${label(s)}`, args, kernel.sync)
    out.push(record(ctx, { case: `matmulBf16 ${label(s)}`, metric, value, unit: "GFLOP/s", limit: peak, target: 2 * peak }))
  }
  return out
}

const matmulRecords = async (ctx: BenchContext, cores: number): Promise<Array<BenchRecord>> => {
  const out: Array<BenchRecord> = []
  const openblas = Cpu.openblasStatus()
  if (!openblas.available) ctx.log(`openblas: absent (${openblas.detail}); no side-by-side rows`)
  for (const threads of [1, cores]) {
    Cpu.setThreads(threads)
    if (openblas.available) Cpu.openblasSetThreads(threads)
    ctx.log(`fma peak on ${threads} thread(s) ...`)
    const peak = fmaPeak(threads)
    const metric = `throughput (${Cpu.activeIsa()}, ${threads} thread${threads > 1 ? "s" : ""})`
    for (const s of shapes) {
      const args = matmulArgs(s)
      ctx.log(`matmul ${label(s)} on ${threads} thread(s) ...`)
      const value = await timeMatmul(`matmul ${label(s)}`, args, Cpu.matmul)
      out.push(record(ctx, { case: `matmul ${label(s)}`, metric, value, unit: "GFLOP/s", limit: peak }))
      if (openblas.available) {
        const blas = await timeMatmul(`openblas ${label(s)}`, args, Cpu.openblasMatmul)
        out.push(record(ctx, { case: `openblas ${label(s)}`, metric, value: blas, unit: "GFLOP/s", limit: peak }))
      }
    }
    for (const t of transposed) {
      const args = { ...matmulArgs(t.shape), transA: t.transA, transB: t.transB }
      ctx.log(`matmul ${t.name} on ${threads} thread(s) ...`)
      const value = await timeMatmul(`matmul ${t.name}`, args, Cpu.matmul)
      out.push(record(ctx, { case: `matmul ${t.name}`, metric, value, unit: "GFLOP/s", limit: peak }))
    }
    out.push(...(await bf16Records(ctx, threads, peak, metric)))
  }
  return out
}

const rowSizes: ReadonlyArray<{ readonly rows: number; readonly cols: number }> = [
  { rows: 64, cols: 1024 }, // 256 KiB: L2
  { rows: 1024, cols: 1024 }, // 4 MiB: L3
  { rows: 16384, cols: 1024 }, // 64 MiB: DRAM
]

const rowRecords = async (ctx: BenchContext, cores: number): Promise<Array<BenchRecord>> => {
  const out: Array<BenchRecord> = []
  for (const { rows, cols } of rowSizes) {
    const bytes = rows * cols * 4
    const src = filled(rows * cols, 3)
    const dst = new Float32Array(rows * cols).fill(0)
    const weight = filled(cols, 4)
    const rstd = new Float64Array(rows)
    // A random permutation (Fisher-Yates on an LCG): the access pattern of MoE token permutation.
    const index = Int32Array.from({ length: rows }, (_, i) => i)
    let state = 7
    for (let i = rows - 1; i > 0; i--) {
      state = (state * 1103515245 + 12345) >>> 0
      const j = Math.floor((state / 4294967296) * (i + 1))
      const t = index[i] as number
      index[i] = index[j] as number
      index[j] = t
    }
    const size = `${rows}x${cols}`
    ctx.log(`row kernels ${size} ...`)
    const limit = await memcpyBandwidth(bytes)
    const moved = 2 * bytes
    const up = filled(rows * cols, 5)
    const grad = filled(rows * cols, 6)
    const dUp = new Float32Array(rows * cols)
    const gluKernels = CpuOptional.gatedActivationKernels()
    const swigluBackward = CpuOptional.swigluBackwardKernel()
    const gptOss = { alpha: 1.702, offset: 1, limit: 7 }
    const activations: ReadonlyArray<readonly [string, () => void, number]> = [
      ["swiglu", () => Cpu.swiglu(src, up, dst), 3 * bytes],
      ...(swigluBackward === undefined ? [] : [["swigluBackward", () => swigluBackward(src, up, grad, dst, dUp), 5 * bytes] as const]),
      ...(gluKernels === undefined
        ? []
        : ([
            ["gatedActivation (GPT-OSS)", () => gluKernels.forward(src, up, dst, gptOss), 3 * bytes],
            ["gatedActivationBackward (GPT-OSS)", () => gluKernels.backward(src, up, grad, dst, dUp, gptOss), 5 * bytes],
          ] as const)),
    ]
    const kernels: ReadonlyArray<readonly [string, () => void, number]> = [
      ...activations,
      ["gatherRows", () => Cpu.gatherRows(src, index, dst, cols), moved + rows * 4],
      ["scatterAddRows", () => Cpu.scatterAddRows(src, index, dst, cols), moved + rows * 4],
      ["softmaxRows", () => Cpu.softmaxRows(src, dst, rows, cols), moved],
      ["rmsnormRows", () => Cpu.rmsnormRows(src, weight, dst, rstd, rows, cols, 1e-6), moved],
    ]
    for (const threads of [1, cores]) {
      Cpu.setThreads(threads)
      for (const [name, fn, count] of kernels) {
        const seconds = await measure(`${name} ${size}`, fn, { batch: batchFor(count), time: 250, warmupTime: 50 })
        const metric = `bandwidth (${threads} thread${threads > 1 ? "s" : ""})`
        out.push(record(ctx, { case: `${name} ${size}`, metric, value: gbPerSecond(count, seconds), unit: "GB/s", limit }))
      }
    }
  }
  return out
}

// Sequential awaited calls: the latency a fiber sees, in microseconds per call.
const asyncLatency = async (args: Cpu.MatmulArgs, calls: number): Promise<number> => {
  for (let i = 0; i < 20; i++) await Cpu.matmulAsync(args)
  const start = performance.now()
  for (let i = 0; i < calls; i++) await Cpu.matmulAsync(args)
  return ((performance.now() - start) * 1000) / calls
}

// The async path pays once the kernel runs at least twice as long as the async overhead (the
// overhead is then at most half of the time the JS thread gets back for other fibers). This
// finds that size in FLOPs from the measured points (log-log interpolation between the two
// sizes around it) and reports it against Cpu.ASYNC_MIN_FLOPS.
const breakEven = (points: ReadonlyArray<{ readonly flops: number; readonly sync: number }>, overhead: number): number => {
  const target = 2 * overhead
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]
    const b = points[i]
    if (a === undefined || b === undefined || b.sync < target) continue
    if (a.sync >= target) return a.flops
    const t = (Math.log(target) - Math.log(a.sync)) / (Math.log(b.sync) - Math.log(a.sync))
    return Math.exp(Math.log(a.flops) + t * (Math.log(b.flops) - Math.log(a.flops)))
  }
  return points[points.length - 1]?.flops ?? Number.NaN
}

const asyncRecords = async (ctx: BenchContext, cores: number): Promise<Array<BenchRecord>> => {
  const out: Array<BenchRecord> = []
  const points: Array<{ flops: number; sync: number; async: number }> = []
  Cpu.setThreads(cores)
  for (const s of [8, 16, 32, 64, 96, 128, 192, 256]) {
    const args = matmulArgs({ m: s, k: s, n: s })
    ctx.log(`async vs sync matmul ${s}^3 ...`)
    const sync = (await measure(`matmul ${s}^3`, () => Cpu.matmul(args), { time: 150, warmupTime: 50, batch: s <= 64 ? 20 : 1 })) * 1e6
    const calls = Math.max(20, Math.min(2000, Math.floor(2e5 / Math.max(1, sync))))
    const async = await asyncLatency(args, calls)
    points.push({ flops: Cpu.matmulFlops(args), sync, async })
    out.push(record(ctx, { case: `matmulAsync ${s}x${s}x${s}`, metric: "latency (limit: sync matmul)", value: async, unit: "us", limit: sync }))
  }
  // The fixed overhead: async minus sync where the kernel itself is negligible (the three
  // smallest sizes), the median against noise.
  const small = points
    .slice(0, 3)
    .map((p) => p.async - p.sync)
    .sort((x, y) => x - y)
  const overhead = small[1] ?? Number.NaN
  out.push(record(ctx, { case: "async overhead", metric: "latency (async - sync, small sizes)", value: overhead, unit: "us" }))
  out.push(
    record(ctx, {
      case: "async break-even",
      metric: "FLOPs where sync = 2 x overhead (target: ASYNC_MIN_FLOPS)",
      value: breakEven(points, overhead),
      unit: "FLOP",
      target: Cpu.ASYNC_MIN_FLOPS,
    }),
  )
  return out
}

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const cores = Cpu.cpuFeatures().cores
  const before = Cpu.threads()
  try {
    return [...(await matmulRecords(ctx, cores)), ...(await coldProductRecords(ctx)), ...(await rowRecords(ctx, cores)), ...(await asyncRecords(ctx, cores))]
  } finally {
    Cpu.setThreads(before)
  }
}
