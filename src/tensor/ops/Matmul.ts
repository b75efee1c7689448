/**
 * Matmul: 2-D and batched matrix products with transposed operands.
 *
 * a is [..., m, k] ([..., k, m] with transA); b is [k, n] ([n, k] with transB) shared by every
 * batch entry, or carries the same leading dims as a. A 2-D a against a batched b repeats a.
 * The product runs on the dtype's kernels (native float32 when loaded); on a bf16 tape the
 * forward and its backward products take bf16 operands and run on a bf16 run's products
 * (Place.bf16Products: on the host the bf16 GEMM where the CPU has AVX512-BF16,
 * kernels/Bf16Matmul.ts; on a device its own).
 *
 * Backward, with C = op(A) op(B) and G = dC:
 *   dA = G op(B)^T (transposed back when transA)      dB = op(A)^T G (transposed back when transB)
 * and a shared operand's gradient is summed over the batch.
 */
import * as Effect from "effect/Effect"
import * as Cpu from "../../native/Cpu.js"
import * as Autograd from "../Autograd.js"
import * as Device from "../Device.js"
import { type DeviceArray, isDeviceArray } from "../device/DeviceRuntime.js"
import * as Place from "../device/Place.js"
import * as DType from "../DType.js"
import * as GradAccumulator from "../GradAccumulator.js"
import * as Bf16Matmul from "../kernels/Bf16Matmul.js"
import * as Kernels from "../kernels/Kernels.js"
import * as StableWeights from "../StableWeights.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/**
 * Which operands are transposed.
 * @category models
 */
export interface MatmulOptions {
  readonly transA?: boolean
  readonly transB?: boolean
}

interface Layout {
  readonly batchShape: ReadonlyArray<number>
  readonly batch: number
  readonly m: number
  readonly n: number
  readonly k: number
  readonly strideA: number
  readonly strideB: number
}

/** A layout with its fields written out (no `{ ...l, m }`: scripts/check-spreads.mjs). */
const shaped = (batchShape: ReadonlyArray<number>, batch: number, m: number, n: number, k: number, strideA: number, strideB: number): Layout => ({
  batchShape,
  batch,
  m,
  n,
  k,
  strideA,
  strideB,
})

const layout = (a: Tensor.Tensor, b: Tensor.Tensor, transA: boolean, transB: boolean): Layout => {
  const fail = (why: string) =>
    TensorError.shape("matmul", `${why}: a ${TensorError.formatShape(a.shape)}${transA ? "^T" : ""} x b ${TensorError.formatShape(b.shape)}${transB ? "^T" : ""}`)
  if (a.rank < 2 || b.rank < 2) throw fail("both operands need at least 2 dims")
  const [ar, ac] = a.shape.slice(-2) as [number, number]
  const [br, bc] = b.shape.slice(-2) as [number, number]
  const m = transA ? ac : ar
  const k = transA ? ar : ac
  const kb = transB ? bc : br
  const n = transB ? br : bc
  if (k !== kb) throw fail(`inner dims differ (${k} vs ${kb})`)
  const aBatch = a.shape.slice(0, -2)
  const bBatch = b.shape.slice(0, -2)
  const sameBatch = Tensor.sameShape(aBatch, bBatch)
  if (!sameBatch && aBatch.length > 0 && bBatch.length > 0) {
    throw fail(`batch dims differ ([${aBatch.join(", ")}] vs [${bBatch.join(", ")}])`)
  }
  const batchShape = aBatch.length > 0 ? aBatch : bBatch
  const batch = Tensor.sizeOf(batchShape)
  return shaped(batchShape, batch, m, n, k, aBatch.length > 0 ? m * k : 0, bBatch.length > 0 ? k * n : 0)
}

/**
 * The product on the place's kernels, or on a bf16 run's (`bf16`: Place.bf16Products) when
 * given: into new storage, or added into `into` (a gradient accumulator: GradAccumulator.productInto).
 */
const run = (
  place: Place.Place,
  a: Place.Buffer,
  b: Place.Buffer,
  dtype: DType.DType,
  l: Layout,
  transA: boolean,
  transB: boolean,
  bf16?: Kernels.Products<Place.Buffer>,
  into?: GradAccumulator.Accumulator,
  generation?: number,
): Place.Buffer => {
  const kernels = bf16 ?? place.kernels(dtype)
  // A weight unchanged within its step (StableWeights) as B: its packed panels are kept.
  const stable = bf16 !== undefined || place.runtime !== undefined ? undefined : generation
  const product = (out: Place.Buffer, accumulate: boolean): void => kernels.matmul(gemmArgs(a, b, out, l, transA, transB, accumulate, stable))
  // A thin weight gradient (few rows) waits to run with the step's others (GradAccumulator);
  // where it computes: a device's accumulator is a device array, the host's host storage.
  const here = into !== undefined && (place.runtime === undefined) === !isDeviceArray(into)
  if (into !== undefined && here && bf16 === undefined && dtype === "float32" && transA && !transB && l.batch === 1 && GradAccumulator.defers(into, l.m, l.n, l.k)) {
    GradAccumulator.deferProduct(into, a as Float32Array | DeviceArray, b as Float32Array | DeviceArray, l.m, l.n, l.k, (da, db, out, k, accumulate) =>
      kernels.matmul(gemmArgs(da, db, out, shaped(l.batchShape, l.batch, l.m, l.n, k, 0, 0), true, false, accumulate)),
    )
    return into
  }
  if (into !== undefined) {
    GradAccumulator.productInto(place.runtime, into, product, [a, b])
    return into
  }
  // Not accumulating, the kernels write every element (an empty sum as 0).
  const out = place.allocate(dtype, l.batch * l.m * l.n)
  product(out, false)
  return out
}

/** A product's kernel arguments (the same for every dtype's kernel); `generation`: B's step generation (StableWeights), if kept. */
const gemmArgs = <S>(a: S, b: S, out: S, l: Layout, transA: boolean, transB: boolean, accumulate = false, generation?: number) => ({
  a,
  b,
  out,
  batch: l.batch,
  m: l.m,
  n: l.n,
  k: l.k,
  transA,
  transB,
  strideA: l.strideA,
  strideB: l.strideB,
  accumulate,
  generation,
})

/** The forward product: a bf16 run's products on a bf16 tape (Bf16Matmul's rule), the place's kernels otherwise. */
const runForward = (place: Place.Place, a: Tensor.Tensor, b: Tensor.Tensor, l: Layout, transA: boolean, transB: boolean, bf16Product: boolean): Place.Buffer =>
  run(place, place.operand(a), place.operand(b), a.dtype, l, transA, transB, bf16Product ? Place.bf16Products(place) : undefined, undefined, StableWeights.generationOf(b))

/**
 * Sums a batched gradient [batch, r, c] over the batch when the operand was shared (on the host:
 * a device's batched gradient is downloaded first).
 */
const sumBatch = (buffer: Place.Buffer, batch: number, size: number): Place.Buffer => {
  if (batch === 1) return buffer
  const data = Place.hostValues(buffer)
  const out = DType.allocate(DType.of(data), size)
  for (let b = 0; b < batch; b++) for (let i = 0; i < size; i++) out[i] = (out[i] as number) + (data[b * size + i] as number)
  return out
}

/**
 * op(a) x op(b).
 * @category combinators
 */
export const matmul = (a: Tensor.Tensor, b: Tensor.Tensor, options: MatmulOptions = {}): Tensor.Tensor => {
  Autograd.sameKind("matmul", a, b)
  const transA = options.transA ?? false
  const transB = options.transB ?? false
  const l = layout(a, b, transA, transB)
  const bf16Product = Bf16Matmul.roundsProduct(a, b)
  const place = Place.of("matmul", a, b)
  return record(place, a, b, l, transA, transB, bf16Product, runForward(place, a, b, l, transA, transB, bf16Product))
}

/**
 * matmul as an Effect: a large float32 product runs on the native thread pool without blocking
 * the event loop, so other ranks' fibers keep running meanwhile; a small one runs inline, where
 * the async hop would cost more than it frees (the threshold is measured: Cpu.ASYNC_MIN_FLOPS).
 * @category combinators
 */
export const matmulEffect = (a: Tensor.Tensor, b: Tensor.Tensor, options: MatmulOptions = {}): Effect.Effect<Tensor.Tensor> =>
  Effect.suspend(() => {
    Autograd.sameKind("matmul", a, b)
    const transA = options.transA ?? false
    const transB = options.transB ?? false
    const l = layout(a, b, transA, transB)
    if (a.dtype !== "float32" || Kernels.native() === undefined || Device.isAccelerator(a.device) || !Cpu.preferAsync(2 * l.batch * l.m * l.n * l.k)) {
      return Effect.sync(() => matmul(a, b, options))
    }
    // Every element written by the product (not accumulating).
    const out = DType.allocateUninitialized("float32", l.batch * l.m * l.n) as Float32Array
    const args = gemmArgs(a.data as Float32Array, b.data as Float32Array, out, l, transA, transB)
    const bf16 = Bf16Matmul.forForward(a, b)
    const rounds = Bf16Matmul.roundsProduct(a, b)
    return Effect.map(
      Effect.promise(() => (bf16 === undefined ? Cpu.matmulAsync(args) : bf16.async(args))),
      () => record(Place.host, a, b, l, transA, transB, rounds, out),
    )
  })

/**
 * The product as an op on the tape, with the backward of the file header; a bf16 product
 * (`bf16Product`, decided when it was recorded) takes Bf16Matmul's backward operands.
 */
const record = (place: Place.Place, a: Tensor.Tensor, b: Tensor.Tensor, l: Layout, transA: boolean, transB: boolean, bf16Product: boolean, out: Place.Buffer): Tensor.Tensor =>
  Autograd.result("matmul", [a, b], out, [...l.batchShape, l.m, l.n], (grad) => {
    const dtype = grad.dtype
    // A bf16 product's backward products take the gradient in bf16 (Place.bf16Gradient).
    const low = bf16Product && grad.dtype === "float32"
    const g = { data: low ? Place.bf16Gradient(place, grad) : place.operand(grad), device: grad.device }
    const kernel = low ? Place.bf16Products(place) : undefined
    // Gradient layouts: G is [batch, m, n] with stride m*n in every batch entry.
    let ga: Tensor.Tensor | undefined
    let gb: Tensor.Tensor | undefined
    if (a.requiresGrad) {
      const gl: Layout = transA ? shaped(l.batchShape, l.batch, l.k, l.m, l.n, l.strideB, l.m * l.n) : shaped(l.batchShape, l.batch, l.m, l.k, l.n, l.m * l.n, l.strideB)
      const raw = transA
        ? run(place, place.operand(b), g.data, dtype, gl, transB, true, kernel)
        : run(place, g.data, place.operand(b), dtype, gl, false, !transB, kernel, undefined, StableWeights.generationOf(b))
      ga = Place.tensor(l.strideA === 0 ? sumBatch(raw, l.batch, l.m * l.k) : raw, a.shape, g.device)
    }
    if (b.requiresGrad) {
      // A weight with an accumulator gets its gradient added into it by the product itself; a
      // weight shared by a batch of plain a takes one product over all the batch's rows.
      const accumulator = GradAccumulator.of(b)
      const into = accumulator !== undefined && (l.batch === 1 || (l.strideB === 0 && l.strideA !== 0 && !transA)) ? accumulator : undefined
      const lb: Layout = into !== undefined && l.batch > 1 ? shaped(l.batchShape, 1, l.batch * l.m, l.n, l.k, 0, 0) : l
      const gl: Layout = transB
        ? shaped(lb.batchShape, lb.batch, lb.n, lb.k, lb.m, lb.m * lb.n, lb.strideA)
        : shaped(lb.batchShape, lb.batch, lb.k, lb.n, lb.m, lb.strideA, lb.m * lb.n)
      const raw = transB
        ? run(place, g.data, place.operand(a), dtype, gl, true, transA, kernel, into)
        : run(place, place.operand(a), g.data, dtype, gl, !transA, false, kernel, into)
      if (into === undefined) gb = Place.tensor(l.strideB === 0 ? sumBatch(raw, l.batch, l.k * l.n) : raw, b.shape, g.device)
    }
    return [ga, gb]
  })
