/**
 * RopeRotate: RoPE's rotation of x [B, S, heads, D] by cos / sin tables, the kernel behind
 * ops/Rope.ts on the host and on the simulated device: the native kernel (cuda/src/kernels/
 * rope.cc) when the addon has it, `rotateLoop` (its specification, the same bits) otherwise.
 */
import * as CpuElementwise from "../../native/CpuElementwise.js"
import type * as DType from "../DType.js"

/**
 * cos and sin per (token, pair): [rows, D/2] each.
 * @category models
 */
export interface RopeTables {
  readonly cos: Float64Array
  readonly sin: Float64Array
  /** Rows of the tables: S when shared by every batch entry, else B*S. */
  readonly rows: number
}

/**
 * Rotates every pair of src by the tables (sign +1) or by their inverse (sign -1) into out: the
 * native kernel when the addon has it, the loop otherwise (the same bits). Every element of out
 * is written.
 * @category kernels
 */
export const rotateInto = (src: DType.Storage, out: DType.Storage, shape: ReadonlyArray<number>, t: RopeTables, sign: 1 | -1): DType.Storage => {
  const [b, s, heads, d] = shape as [number, number, number, number]
  const kernel = CpuElementwise.ropeKernel()
  if (kernel !== undefined) {
    kernel(src, t.cos, t.sin, out, { b, s, heads, d, tableRows: t.rows }, sign)
    return out
  }
  return rotateLoop(src, out, shape, t, sign)
}

/**
 * `rotate` in TypeScript: the specification the native kernel reproduces bit for bit.
 * @category kernels
 */
export const rotateLoop = (src: DType.Storage, out: DType.Storage, shape: ReadonlyArray<number>, t: RopeTables, sign: 1 | -1): DType.Storage => {
  const [b, s, heads, d] = shape as [number, number, number, number]
  const half = d / 2
  for (let bi = 0; bi < b; bi++) {
    for (let si = 0; si < s; si++) {
      const row = (t.rows === s ? si : bi * s + si) * half
      for (let h = 0; h < heads; h++) {
        const base = ((bi * s + si) * heads + h) * d
        for (let i = 0; i < half; i++) {
          const c = t.cos[row + i] as number
          const sn = sign * (t.sin[row + i] as number)
          const x0 = src[base + i] as number
          const x1 = src[base + i + half] as number
          out[base + i] = x0 * c - x1 * sn
          out[base + i + half] = x1 * c + x0 * sn
        }
      }
    }
  }
  return out
}
