/**
 * fast-check arbitraries and references for the native kernel suites: float vectors placed as
 * views at random offsets inside plain or shared buffers, with guard elements around them so a
 * kernel that writes outside its view is caught.
 */
import fc from "fast-check"

/** Element constructors the kernels take. */
export type FloatCtor = Float32ArrayConstructor | Float64ArrayConstructor

/** Where a view lives: its buffer kind and how many guard elements sit before and after it. */
export interface Placement {
  readonly shared: boolean
  readonly before: number
  readonly after: number
}

/** Lengths biased to the edges: 0, 1, around vector widths (8, 16, 32, 64) and odd sizes. */
export const length: fc.Arbitrary<number> = fc.oneof(fc.constantFrom(0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65), fc.integer({ min: 0, max: 600 }))

/** A buffer kind and guard sizes (odd offsets misalign the view against 64-byte lines). */
export const placement: fc.Arbitrary<Placement> = fc.record({
  shared: fc.boolean(),
  before: fc.integer({ min: 0, max: 19 }),
  after: fc.integer({ min: 0, max: 5 }),
})

/** Float32 values that cannot overflow in `y + a * x`; includes -0 and subnormals. */
export const f32 = fc.float({ min: -1e6, max: 1e6, noNaN: true })

/** Float64 values that cannot overflow in `y + a * x`; includes -0 and subnormals. */
export const f64 = fc.double({ min: -1e100, max: 1e100, noNaN: true })

/** One axpy input: the scalar, x and y values of one length, and where each view is placed. */
export interface AxpyCase {
  readonly a: number
  readonly xs: ReadonlyArray<number>
  readonly ys: ReadonlyArray<number>
  readonly px: Placement
  readonly py: Placement
}

/** axpy inputs whose values come from `value`. */
export const axpyCase = (value: fc.Arbitrary<number>): fc.Arbitrary<AxpyCase> =>
  length.chain((n) => {
    const vector = fc.array(value, { minLength: n, maxLength: n })
    return fc.record({ a: value, xs: vector, ys: vector, px: placement, py: placement })
  })

/** A guard value no kernel result in these suites can produce by accident. */
export const GUARD = 12345.5

/** A view holding `values`, inside a buffer with `before` / `after` guard elements. */
export const place = <C extends FloatCtor>(ctor: C, values: ReadonlyArray<number>, at: Placement): InstanceType<C> => {
  const total = at.before + values.length + at.after
  const bytes = total * ctor.BYTES_PER_ELEMENT
  const buffer = at.shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes)
  // Constructed through ArrayBufferLike: a union of constructors does not overload-resolve.
  const full: Float32Array | Float64Array = new (ctor as Float64ArrayConstructor)(buffer as ArrayBuffer)
  full.fill(GUARD)
  const view = full.subarray(at.before, at.before + values.length)
  view.set(values)
  return view as InstanceType<C>
}

/** Whether every element of the view's buffer outside the view still holds GUARD. */
export const guardsIntact = (view: Float32Array | Float64Array): boolean => {
  const ctor = view instanceof Float32Array ? Float32Array : Float64Array
  const full = new (ctor as Float64ArrayConstructor)(view.buffer as ArrayBuffer)
  const start = view.byteOffset / view.BYTES_PER_ELEMENT
  for (let i = 0; i < full.length; i++) {
    if ((i < start || i >= start + view.length) && full[i] !== GUARD) return false
  }
  return true
}

/** JS reference for float64: exactly what the addon must produce. */
export const axpyF64Ref = (a: number, x: ArrayLike<number>, y: ArrayLike<number>): Array<number> => Array.from(y, (yi, i) => yi + a * (x[i] ?? 0))

/**
 * JS reference for float32: computed in double (the product of two floats is exact there) and
 * rounded once to float32, i.e. the correctly rounded result up to a rare double rounding.
 */
export const axpyF32Ref = (a: number, x: ArrayLike<number>, y: ArrayLike<number>): Array<number> => {
  const af = Math.fround(a)
  return Array.from(y, (yi, i) => Math.fround(yi + af * (x[i] ?? 0)))
}

/**
 * Float32 tolerance: 1e-6 relative to the size of the terms, |y| + |a x|, plus a floor far
 * below the smallest normal float. Relative to the result itself would be wrong: when y and
 * a x cancel, a kernel that rounds the product first (the scalar path) differs from the fused
 * one by an amount set by the terms, not by the tiny result.
 */
export const f32Close = (got: number, want: number, a: number, x: number, y: number): boolean => Math.abs(got - want) <= 1e-6 * (Math.abs(y) + Math.abs(Math.fround(a) * x)) + 1e-40
