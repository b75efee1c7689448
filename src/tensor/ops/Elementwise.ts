/**
 * Elementwise ops: add, sub, mul, div with broadcasting; scale; exp, log, SiLU.
 *
 * Binary ops broadcast numpy-style (trailing dims aligned); their backward sums the gradient
 * back over the broadcast dims. Storage is computed in the input dtype.
 */
import { BinaryOp, BroadcastKind, elementwiseKernels } from "../../native/CpuElementwise.js"
import * as Autograd from "../Autograd.js"
import * as Broadcast from "../Broadcast.js"
import * as Device from "../Device.js"
import * as Place from "../device/Place.js"
import * as DType from "../DType.js"
import { nativeFrom } from "../kernels/AddInto.js"
import type * as ElementwiseInto from "../kernels/ElementwiseInto.js"
import * as Tensor from "../Tensor.js"

type Binary = (x: number, y: number) => number

/** The kernels' width argument for a plan they take (b's length for a suffix, a row's for rows). */
const widthOf = (p: Broadcast.Plan, b: Tensor.Tensor): number => (p.kind === "rows" ? (p.rowLength as number) : p.kind === "suffix" ? b.size : 0)

const binary = (
  op: string,
  code: ElementwiseInto.OpCode,
  a: Tensor.Tensor,
  b: Tensor.Tensor,
  f: Binary,
  backward: (g: Tensor.Tensor) => readonly [Tensor.Tensor | undefined, Tensor.Tensor | undefined],
): Tensor.Tensor => {
  Autograd.sameKind(op, a, b)
  const p = Broadcast.plan(op, a.shape, b.shape)
  const n = p.shape.reduce((x, d) => x * d, 1)
  // The broadcasts the kernels take run where the inputs are; strided ones on the host's loops.
  const place = Place.of(op, a, b)
  if (p.kind !== "general") {
    const out = place.allocate(a.dtype, n)
    place.elementwise.binary(code, p.kind, place.operand(a), place.operand(b), out, widthOf(p, b))
    return Autograd.result(op, [a, b], out, p.shape, (g) => backward(g))
  }
  // Read only: a device tensor keeps its device copy.
  const x = a.readHost()
  const y = b.readHost()
  const out = DType.allocate(a.dtype, n)
  for (let i = 0; i < n; i++) out[i] = f(x[p.indexA(i)] as number, y[p.indexB(i)] as number)
  return Autograd.result(op, [a, b], out, p.shape, (g) => backward(g))
}

/** Grow-only scratch storage per dtype for products that are reduced at once (this thread's). */
const scratch: { float32: Float32Array; float64: Float64Array } = { float32: new Float32Array(0), float64: new Float64Array(0) }

const scratchOf = (dtype: DType.DType, n: number): DType.Storage => {
  if (scratch[dtype].length < n) {
    if (dtype === "float32") scratch.float32 = new Float32Array(n)
    else scratch.float64 = new Float64Array(n)
  }
  return scratch[dtype].subarray(0, n)
}

/**
 * unbroadcast(mul(g, o), t), mul's backward for the operand t: where t was broadcast and o has
 * g's shape, the product (dead once summed) goes into scratch storage on the native kernel
 * instead of a new tensor (the backward of a per-row scale, as the experts' probs, made one of
 * the row count times the width every time); the same kernels, the same bits.
 */
const reducedProduct = (g: Tensor.Tensor, o: Tensor.Tensor, t: Tensor.Tensor): Tensor.Tensor => {
  const n = g.size
  const reduced = n >= nativeFrom && !Device.isAccelerator(g.device) && g.dtype === o.dtype && !Tensor.sameShape(g.shape, t.shape) && Tensor.sameShape(g.shape, o.shape)
  const kernels = reduced ? elementwiseKernels() : undefined
  if (kernels === undefined) return unbroadcast(mul(g, o), t)
  const product = scratchOf(g.dtype, n)
  kernels.binary(BinaryOp.mul, BroadcastKind.same, g.data, o.data, product, 0)
  const out = DType.allocate(g.dtype, t.size)
  Broadcast.reduceTo(product, g.shape, t.shape, out)
  return Tensor.fromStorage(out, t.shape, { device: g.device })
}

/**
 * Sums a gradient of the broadcast shape back to `t`'s shape: on g's device where the reduction
 * is one of the kernels' (rows, suffix), on the host otherwise.
 */
const unbroadcast = (g: Tensor.Tensor, t: Tensor.Tensor): Tensor.Tensor => {
  if (Tensor.sameShape(g.shape, t.shape)) return g
  const p = Broadcast.plan("broadcast-backward", g.shape, t.shape)
  if (p.kind === "rows" || p.kind === "suffix") {
    const place = Place.of("broadcast-backward", g)
    const out = place.allocate(g.dtype, t.size)
    if (p.kind === "rows") place.elementwise.sumRows(place.operand(g), out, p.rowLength as number)
    else place.elementwise.sumSuffix(place.operand(g), out, t.size)
    return Place.tensor(out, t.shape, g.device)
  }
  const out = DType.allocate(g.dtype, t.size)
  Broadcast.reduceTo(g.readHost(), g.shape, t.shape, out)
  return Tensor.fromStorage(out, t.shape, { device: g.device })
}

/**
 * a + b.
 * @category combinators
 */
export const add = (a: Tensor.Tensor, b: Tensor.Tensor): Tensor.Tensor =>
  binary(
    "add",
    0,
    a,
    b,
    (x, y) => x + y,
    (g) => [unbroadcast(g, a), unbroadcast(g, b)],
  )

/**
 * a - b.
 * @category combinators
 */
export const sub = (a: Tensor.Tensor, b: Tensor.Tensor): Tensor.Tensor =>
  binary(
    "sub",
    1,
    a,
    b,
    (x, y) => x - y,
    (g) => [unbroadcast(g, a), unbroadcast(scale(g, -1), b)],
  )

/**
 * a * b.
 * @category combinators
 */
export const mul = (a: Tensor.Tensor, b: Tensor.Tensor): Tensor.Tensor =>
  binary(
    "mul",
    2,
    a,
    b,
    (x, y) => x * y,
    (g) => [reducedProduct(g, b, a), reducedProduct(g, a, b)],
  )

/**
 * a / b.
 * @category combinators
 */
export const div = (a: Tensor.Tensor, b: Tensor.Tensor): Tensor.Tensor =>
  binary(
    "div",
    3,
    a,
    b,
    (x, y) => x / y,
    (g) => {
      const ga = div(g, b)
      // d(a/b)/db = -a/b^2 = -(a/b)/b
      const gb = scale(div(mul(ga, a), b), -1)
      return [unbroadcast(ga, a), unbroadcast(gb, b)]
    },
  )

const unary = (op: string, a: Tensor.Tensor, f: (x: number) => number, backward: (g: Tensor.Tensor, out: Tensor.Tensor) => Tensor.Tensor): Tensor.Tensor => {
  const x = a.readHost()
  const out = DType.allocate(a.dtype, a.size)
  for (let i = 0; i < x.length; i++) out[i] = f(x[i] as number)
  const result: Tensor.Tensor = Autograd.result(op, [a], out, a.shape, (g) => [backward(g, result)])
  return result
}

/**
 * s * a for a number s.
 * @category combinators
 */
export const scale = (a: Tensor.Tensor, s: number): Tensor.Tensor => {
  const place = Place.of("scale", a)
  const out = place.allocate(a.dtype, a.size)
  place.elementwise.scale(place.operand(a), s, out)
  return Autograd.result("scale", [a], out, a.shape, (g) => [scale(g, s)])
}

/**
 * e^a.
 * @category combinators
 */
export const exp = (a: Tensor.Tensor): Tensor.Tensor => unary("exp", a, Math.exp, (g, out) => mul(g, out))

/**
 * ln a.
 * @category combinators
 */
export const log = (a: Tensor.Tensor): Tensor.Tensor => unary("log", a, Math.log, (g) => div(g, a))

const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)))

/**
 * SiLU: a * sigmoid(a).
 * @category combinators
 */
export const silu = (a: Tensor.Tensor): Tensor.Tensor =>
  unary(
    "silu",
    a,
    (x) => x * sigmoid(x),
    (g) => {
      // d/dx x*s(x) = s(x) * (1 + x*(1 - s(x)))
      const d = DType.allocate(a.dtype, a.size)
      const x = a.data
      for (let i = 0; i < x.length; i++) {
        const v = x[i] as number
        const s = sigmoid(v)
        d[i] = s * (1 + v * (1 - s))
      }
      return mul(g, Tensor.fromStorage(d, a.shape, { device: a.device }))
    },
  )

/**
 * sigmoid(a), computed stably for large |a|.
 * @category combinators
 */
export const sigmoidOf = (a: Tensor.Tensor): Tensor.Tensor =>
  unary("sigmoid", a, sigmoid, (g, out) => {
    const d = DType.allocate(a.dtype, a.size)
    for (let i = 0; i < d.length; i++) {
      const s = out.data[i] as number
      d[i] = s * (1 - s)
    }
    return mul(g, Tensor.fromStorage(d, a.shape, { device: a.device }))
  })
