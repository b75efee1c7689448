/**
 * A float64 attention oracle for the native kernels (the reference kernel set has no attention):
 * straight from the definition in src/native/Cpu.ts (AttentionShape: causal, key j visible to
 * query i iff queryFirstKeys[i] <= keyPositions[j] <= queryPositions[i]), one query row at a time,
 * with, beside every result, the error scale its float32 computation may reach: the sum of the
 * absolute values of its terms, and the largest |score term| (scale * sum_e |q_e k_e|) of the
 * row, since an error in a score moves the probabilities relatively by that much.
 */
import type * as Cpu from "../../src/native/Cpu.js"

export interface Inputs {
  readonly q: ArrayLike<number>
  readonly k: ArrayLike<number>
  readonly v: ArrayLike<number>
}

export interface Forward {
  readonly out: Float64Array
  readonly lse: Float64Array
  /** Per out element: 1 + max |score term| of the row, times max |v| over the visible keys. */
  readonly outScale: Float64Array
  /** Per lse element: 1 + max |score term| + |lse|. */
  readonly lseScale: Float64Array
}

export interface Backward {
  readonly dq: Float64Array
  readonly dk: Float64Array
  readonly dv: Float64Array
  readonly dqScale: Float64Array
  readonly dkScale: Float64Array
  readonly dvScale: Float64Array
}

const layout = (s: Cpu.AttentionShape) => {
  const group = s.hq / s.hkv
  const scale = s.scale ?? (s.d > 0 ? 1 / Math.sqrt(s.d) : 1)
  const causal = s.causal ?? true
  const qp = (b: number, i: number) => (s.queryPositions === undefined ? i : (s.queryPositions[s.queryPositions.length === s.sq ? i : b * s.sq + i] as number))
  const kp = (b: number, j: number) => (s.keyPositions === undefined ? j : (s.keyPositions[s.keyPositions.length === s.sk ? j : b * s.sk + j] as number))
  // Each query's lowest visible key position: none (-Infinity) without first keys.
  const first = (b: number, i: number) =>
    s.queryFirstKeys === undefined ? Number.NEGATIVE_INFINITY : (s.queryFirstKeys[s.queryFirstKeys.length === s.sq ? i : b * s.sq + i] as number)
  return {
    group,
    scale,
    visible: (b: number, i: number, j: number) => !causal || (first(b, i) <= kp(b, j) && kp(b, j) <= qp(b, i)),
    qAt: (b: number, i: number, h: number) => ((b * s.sq + i) * s.hq + h) * s.d,
    kAt: (b: number, j: number, h: number) => ((b * s.sk + j) * s.hkv + h) * s.d,
    vAt: (b: number, j: number, h: number) => ((b * s.sk + j) * s.hkv + h) * s.dv,
    oAt: (b: number, i: number, h: number) => ((b * s.sq + i) * s.hq + h) * s.dv,
    lAt: (b: number, h: number, i: number) => (b * s.hq + h) * s.sq + i,
  }
}

/** Calls fn for every (batch, query head, query) row with its kv head, scores and probabilities. */
const eachRow = (s: Cpu.AttentionShape, x: Inputs, fn: (b: number, h: number, kh: number, i: number, p: Float64Array, lse: number, termMax: number) => void): void => {
  const L = layout(s)
  const scores = new Float64Array(s.sk)
  const p = new Float64Array(s.sk)
  for (let b = 0; b < s.b; b++) {
    for (let h = 0; h < s.hq; h++) {
      const kh = Math.floor(h / L.group)
      for (let i = 0; i < s.sq; i++) {
        let max = Number.NEGATIVE_INFINITY
        let termMax = 0
        for (let j = 0; j < s.sk; j++) {
          if (!L.visible(b, i, j)) continue
          let dot = 0
          let abs = 0
          for (let e = 0; e < s.d; e++) {
            const t = (x.q[L.qAt(b, i, h) + e] as number) * (x.k[L.kAt(b, j, kh) + e] as number)
            dot += t
            abs += Math.abs(t)
          }
          scores[j] = L.scale * dot
          termMax = Math.max(termMax, Math.abs(L.scale) * abs)
          max = Math.max(max, scores[j] as number)
        }
        let sum = 0
        for (let j = 0; j < s.sk; j++) if (L.visible(b, i, j)) sum += Math.exp((scores[j] as number) - max)
        const lse = sum === 0 ? Number.NEGATIVE_INFINITY : max + Math.log(sum)
        for (let j = 0; j < s.sk; j++) p[j] = sum > 0 && L.visible(b, i, j) ? Math.exp((scores[j] as number) - lse) : 0
        fn(b, h, kh, i, p, lse, termMax)
      }
    }
  }
}

export const forward = (s: Cpu.AttentionShape, x: Inputs): Forward => {
  const L = layout(s)
  const out = new Float64Array(s.b * s.sq * s.hq * s.dv)
  const outScale = new Float64Array(out.length)
  const lse = new Float64Array(s.b * s.hq * s.sq)
  const lseScale = new Float64Array(lse.length)
  eachRow(s, x, (b, h, kh, i, p, rowLse, termMax) => {
    lse[L.lAt(b, h, i)] = rowLse
    lseScale[L.lAt(b, h, i)] = 1 + termMax + (Number.isFinite(rowLse) ? Math.abs(rowLse) : 0)
    for (let e = 0; e < s.dv; e++) {
      let acc = 0
      let vmax = 0
      for (let j = 0; j < s.sk; j++) {
        if (p[j] === 0) continue
        const v = x.v[L.vAt(b, j, kh) + e] as number
        acc += (p[j] as number) * v
        vmax = Math.max(vmax, Math.abs(v))
      }
      out[L.oAt(b, i, h) + e] = acc
      outScale[L.oAt(b, i, h) + e] = (1 + termMax) * vmax
    }
  })
  return { out, lse, outScale, lseScale }
}

/** Backward of `forward` for the output gradient g: delta_i = sum_j p_j dp_j, the exact value. */
export const backward = (s: Cpu.AttentionShape, x: Inputs, g: ArrayLike<number>): Backward => {
  const L = layout(s)
  const dq = new Float64Array(x.q.length)
  const dk = new Float64Array(x.k.length)
  const dv = new Float64Array(x.v.length)
  const dqScale = new Float64Array(dq.length)
  const dkScale = new Float64Array(dk.length)
  const dvScale = new Float64Array(dv.length)
  const dp = new Float64Array(s.sk)
  const dpAbs = new Float64Array(s.sk)
  eachRow(s, x, (b, h, kh, i, p, _lse, termMax) => {
    const go = L.oAt(b, i, h)
    let delta = 0
    let deltaAbs = 0
    for (let j = 0; j < s.sk; j++) {
      if (p[j] === 0) continue
      let d = 0
      let dAbs = 0
      for (let e = 0; e < s.dv; e++) {
        const term = (g[go + e] as number) * (x.v[L.vAt(b, j, kh) + e] as number)
        d += term
        dAbs += Math.abs(term)
      }
      dp[j] = d
      // The magnitude of dp's terms, not of dp: a float32 dot product is off by a few ulp of
      // its terms, however much they cancel (a query with one visible key has dq exactly 0 in
      // float64 and a rounding residue of dp - delta in float32).
      dpAbs[j] = dAbs
      delta += (p[j] as number) * d
      deltaAbs += (p[j] as number) * dAbs
    }
    const grow = 1 + termMax
    for (let j = 0; j < s.sk; j++) {
      const pj = p[j] as number
      if (pj === 0) continue
      const ds = L.scale * pj * ((dp[j] as number) - delta)
      // |ds| can cancel to ~0 while its parts do not: scale the tolerance by the parts.
      const dsAbs = Math.abs(L.scale) * pj * ((dpAbs[j] as number) + deltaAbs) * grow
      for (let e = 0; e < s.d; e++) {
        const qi = L.qAt(b, i, h) + e
        const kj = L.kAt(b, j, kh) + e
        dq[qi] = (dq[qi] as number) + ds * (x.k[kj] as number)
        dk[kj] = (dk[kj] as number) + ds * (x.q[qi] as number)
        dqScale[qi] = (dqScale[qi] as number) + dsAbs * Math.abs(x.k[kj] as number)
        dkScale[kj] = (dkScale[kj] as number) + dsAbs * Math.abs(x.q[qi] as number)
      }
      for (let e = 0; e < s.dv; e++) {
        const vj = L.vAt(b, j, kh) + e
        dv[vj] = (dv[vj] as number) + pj * (g[go + e] as number)
        dvScale[vj] = (dvScale[vj] as number) + pj * grow * Math.abs(g[go + e] as number)
      }
    }
  })
  return { dq, dk, dv, dqScale, dkScale, dvScale }
}
