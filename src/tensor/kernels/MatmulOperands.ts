/**
 * MatmulOperands: one product's arguments on other operands (a device's arrays read on the host,
 * typed arrays checked as float32), every field written out: `{ ...p, a, b, out }` would make a
 * new hidden class at every call (scripts/check-spreads.mjs).
 */
import type { MatmulArgs } from "./Kernels.js"

/**
 * The product `p` on operands `a`, `b` and `out`.
 * @category constructors
 */
export const onOperands = <S, T>(p: MatmulArgs<S>, a: T, b: T, out: T): MatmulArgs<T> => ({
  a,
  b,
  out,
  batch: p.batch,
  m: p.m,
  n: p.n,
  k: p.k,
  transA: p.transA,
  transB: p.transB,
  strideA: p.strideA,
  strideB: p.strideB,
  accumulate: p.accumulate,
  generation: p.generation,
})
