// The float64 ops of the independent transformers reading (hfReference.ts): linear layers as
// transformers stores them ([out, in]), RMSNorm, SiLU, sigmoid, residual sums and SwiGLU MLPs.
// They share no code with src/.
import type { Stored } from "./hfModelDir.js"

export type Matrix = Array<Float64Array>

/** x [S, in] times a Linear weight [out, in] transposed (+ bias). */
export const linear = (x: Matrix, w: Stored, bias?: Stored): Matrix => {
  const [outs, ins] = w.shape as [number, number]
  return x.map((row) => {
    const y = new Float64Array(outs)
    for (let o = 0; o < outs; o++) {
      let s = bias === undefined ? 0 : (bias.values[o] as number)
      for (let i = 0; i < ins; i++) s += (row[i] as number) * (w.values[o * ins + i] as number)
      y[o] = s
    }
    return y
  })
}

export const rmsNorm = (x: Matrix, w: Stored, eps: number): Matrix =>
  x.map((row) => {
    let ms = 0
    for (const v of row) ms += v * v
    const r = 1 / Math.sqrt(ms / row.length + eps)
    return row.map((v, i) => v * r * (w.values[i] as number))
  })

const silu = (v: number) => v / (1 + Math.exp(-v))
export const sigmoid = (v: number) => 1 / (1 + Math.exp(-v))
export const add = (a: Matrix, b: Matrix): Matrix => a.map((row, s) => row.map((v, i) => v + (b[s]?.[i] as number)))

/** SwiGLU: silu(x Wg) * (x Wu) Wd, the three Linear weights at `p` + names[0..2]. */
export const swiglu = (x: Matrix, get: (name: string) => Stored, p: string, names: readonly [string, string, string]): Matrix => {
  const g = linear(x, get(`${p}${names[0]}.weight`))
  const u = linear(x, get(`${p}${names[1]}.weight`))
  return linear(
    g.map((row, s) => row.map((v, i) => silu(v) * (u[s]?.[i] as number))),
    get(`${p}${names[2]}.weight`),
  )
}
