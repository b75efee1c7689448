/**
 * Attention: scaled dot-product attention with a causal mask and grouped-query heads.
 *
 * Shapes:
 *   q [B, Sq, Hq, D], k [B, Sk, Hkv, D], v [B, Sk, Hkv, Dv] -> out [B, Sq, Hq, Dv]
 *   Hq must be a multiple of Hkv: query head h reads kv head floor(h / (Hq / Hkv)), so each kv
 *   head serves Hq / Hkv consecutive query heads (Hkv = Hq is multi-head, Hkv = 1 multi-query).
 *
 * For query i of head h: s_j = scale * q_i . k_j over the visible keys j, p = softmax(s),
 * out_i = sum_j p_j v_j. The scale defaults to 1/sqrt(D) (1 when D = 0).
 *
 * Masking. With `causal` (the default) key j is visible to query i iff keyPos[j] <= queryPos[i],
 * and, given `queryFirstKeys`, also queryFirstKeys[i] <= keyPos[j]: each query's lowest visible key
 * position (the first position of its document, for attention that does not cross the documents
 * packed into one sequence; Megatron's --reset-attention-mask).
 * Positions default to 0..Sq-1 and 0..Sk-1, the plain causal mask when Sq = Sk. A
 * context-parallel chunk passes the real positions of its queries and of the keys it holds
 * (its own and earlier chunks'), so it sees exactly what the whole sequence would. Each array has
 * S entries (shared by every batch entry) or B*S entries (one per token, [B, S] order), and so
 * does `queryFirstKeys` (as the query positions). With `causal: false` every key is visible and
 * positions are ignored.
 *
 * Decision: a query row with no visible key (possible with offsets) outputs zeros and passes
 * back zero gradient, rather than the NaN of a softmax over nothing.
 *
 * Only the row log-sum-exp is kept for backward (B*Hq*Sq numbers); probabilities are recomputed
 * from it, as flash attention does, so memory stays linear in the sequence length. Backward,
 * per row with g = dout_i, dp_j = g . v_j and delta = sum_j p_j dp_j:
 *   ds_j = p_j (dp_j - delta)
 *   dq_i = scale * sum_j ds_j k_j      dk_j += scale * ds_j q_i      dv_j += p_j g
 * Sums run in float64 in a fixed order (deterministic), then round once to the dtype. With
 * `sinks` the softmax has one more logit per head that takes probability and gives no value
 * (AttentionSinks, folded around the same kernels).
 */
import * as Cpu from "../../native/Cpu.js"
import * as Autograd from "../Autograd.js"
import * as AttentionSinks from "../kernels/AttentionSinks.js"
import * as Device from "../Device.js"
import type { DeviceArray, DeviceRuntime } from "../device/DeviceRuntime.js"
import * as Place from "../device/Place.js"
import * as Kernels from "../kernels/Kernels.js"
import * as DType from "../DType.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/**
 * Options of attention.
 * @category models
 */
export interface AttentionOptions {
  /** Multiplies q . k (default 1/sqrt(D)). */
  readonly scale?: number | undefined
  /** Apply the position mask (default true). */
  readonly causal?: boolean | undefined
  /** Positions of the queries: Sq or B*Sq entries (default 0..Sq-1). */
  readonly queryPositions?: Int32Array | undefined
  /** Positions of the keys: Sk or B*Sk entries (default 0..Sk-1). */
  readonly keyPositions?: Int32Array | undefined
  /** With causal: each query's lowest visible key position, Sq or B*Sq entries (default none). */
  readonly queryFirstKeys?: Int32Array | undefined
  /** [Hq] logits, one per query head, of a softmax sink (AttentionSinks), on q's device; none by default. */
  readonly sinks?: Tensor.Tensor | undefined
}

interface Layout {
  readonly b: number
  readonly sq: number
  readonly sk: number
  readonly hq: number
  readonly hkv: number
  readonly d: number
  readonly dv: number
  readonly group: number
}

const layout = (q: Tensor.Tensor, k: Tensor.Tensor, v: Tensor.Tensor): Layout => {
  const shapes = () => `q ${TensorError.formatShape(q.shape)}, k ${TensorError.formatShape(k.shape)}, v ${TensorError.formatShape(v.shape)}`
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) {
    throw TensorError.shape("attention", `q, k, v must be [B, S, heads, D]: ${shapes()}`)
  }
  const [b, sq, hq, d] = q.shape as [number, number, number, number]
  const [kb, sk, hkv, kd] = k.shape as [number, number, number, number]
  const [vb, vs, vh, dv] = v.shape as [number, number, number, number]
  if (kb !== b || vb !== b) throw TensorError.shape("attention", `batch dims differ: ${shapes()}`)
  if (vs !== sk || vh !== hkv) throw TensorError.shape("attention", `k and v need the same sequence and head dims: ${shapes()}`)
  if (kd !== d) throw TensorError.shape("attention", `q and k head dims differ (${d} vs ${kd}): ${shapes()}`)
  if (hkv === 0 || hq % hkv !== 0) {
    throw TensorError.shape("attention", `query heads ${hq} must be a multiple of kv heads ${hkv} (grouped-query attention): ${shapes()}`)
  }
  return { b, sq, sk, hq, hkv, d, dv, group: hq / hkv }
}

/** A position lookup (batch, index) -> position for S or B*S positions; identity by default. */
const positionsOf = (what: string, p: Int32Array | undefined, b: number, s: number): ((bi: number, i: number) => number) => {
  if (p === undefined) return (_, i) => i
  if (p.length === s) return (_, i) => p[i] as number
  if (p.length === b * s) return (bi, i) => p[bi * s + i] as number
  throw TensorError.shape("attention", `${p.length} ${what} positions: needs S = ${s} (shared by the batch) or B*S = ${b * s}`)
}

/**
 * Causal (by default) scaled dot-product attention with grouped-query heads.
 * @category combinators
 */
export const attention = (q: Tensor.Tensor, k: Tensor.Tensor, v: Tensor.Tensor, options: AttentionOptions = {}): Tensor.Tensor => {
  Autograd.sameKind("attention", q, k)
  Autograd.sameKind("attention", q, v)
  const l = layout(q, k, v)
  const { b, sq, sk, hq, hkv, d, dv, group } = l
  const scale = options.scale ?? (d > 0 ? 1 / Math.sqrt(d) : 1)
  if (!Number.isFinite(scale)) throw TensorError.shape("attention", `scale must be finite, got ${scale}`)
  const causal = options.causal ?? true
  // Positions are checked here first, so both paths refuse bad input with the same message.
  const qPos = positionsOf("query", options.queryPositions, b, sq)
  const kPos = positionsOf("key", options.keyPositions, b, sk)
  const first = options.queryFirstKeys === undefined ? undefined : positionsOf("first key", options.queryFirstKeys, b, sq)
  const sinks = options.sinks
  if (sinks !== undefined && (sinks.rank !== 1 || sinks.shape[0] !== hq))
    throw TensorError.shape("attention", `sinks must be [Hq] = [${hq}], one logit per query head: got ${TensorError.formatShape(sinks.shape)}`)
  if (q.dtype === "float32" && Device.isAccelerator(q.device))
    return deviceAttention(Place.of("attention", ...inputsOf(q, k, v, sinks)), q, k, v, sinks, l, shapeOf(l, scale, causal, options))
  if (q.dtype === "float32" && Kernels.native() !== undefined) return nativeAttention(q, k, v, l, scale, causal, options)
  const visible = (bi: number, i: number, j: number): boolean => !causal || (kPos(bi, j) <= qPos(bi, i) && (first === undefined || first(bi, i) <= kPos(bi, j)))
  const qs = q.data
  const ks = k.data
  const vs = v.data
  // Flat offsets of one head vector.
  const qAt = (bi: number, i: number, h: number) => ((bi * sq + i) * hq + h) * d
  const kAt = (bi: number, j: number, h: number) => ((bi * sk + j) * hkv + h) * d
  const vAt = (bi: number, j: number, h: number) => ((bi * sk + j) * hkv + h) * dv
  const oAt = (bi: number, i: number, h: number) => ((bi * sq + i) * hq + h) * dv
  const score = (qo: number, ko: number): number => {
    let s = 0
    for (let e = 0; e < d; e++) s += (qs[qo + e] as number) * (ks[ko + e] as number)
    return scale * s
  }

  const out = DType.allocate(q.dtype, b * sq * hq * dv)
  // Log-sum-exp of every (batch, head, query) row; -Infinity marks a row with no visible key.
  const lse = new Float64Array(b * hq * sq)
  const scores = new Float64Array(sk)
  const acc = new Float64Array(dv)
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / group)
      for (let i = 0; i < sq; i++) {
        const qo = qAt(bi, i, h)
        let max = Number.NEGATIVE_INFINITY
        let seen = 0
        for (let j = 0; j < sk; j++) {
          if (!visible(bi, i, j)) continue
          const s = score(qo, kAt(bi, j, kh))
          scores[j] = s
          if (s > max || seen === 0) max = s
          seen++
        }
        const row = (bi * hq + h) * sq + i
        if (seen === 0) {
          lse[row] = Number.NEGATIVE_INFINITY
          continue // out stays zero
        }
        let sum = 0
        for (let j = 0; j < sk; j++) if (visible(bi, i, j)) sum += Math.exp((scores[j] as number) - max)
        const m = max + Math.log(sum)
        lse[row] = m
        acc.fill(0)
        for (let j = 0; j < sk; j++) {
          if (!visible(bi, i, j)) continue
          const p = Math.exp((scores[j] as number) - m)
          const vo = vAt(bi, j, kh)
          for (let e = 0; e < dv; e++) acc[e] = (acc[e] as number) + p * (vs[vo + e] as number)
        }
        const oo = oAt(bi, i, h)
        for (let e = 0; e < dv; e++) out[oo + e] = acc[e] as number
      }
    }
  }
  if (sinks !== undefined) AttentionSinks.fold(out, lse, sinks.data, l)

  return Autograd.result("attention", inputsOf(q, k, v, sinks), out, [b, sq, hq, dv], (g) => {
    const gy = g.data
    const dq = new Float64Array(q.size)
    const dk = new Float64Array(k.size)
    const dvAcc = new Float64Array(v.size)
    const probs = new Float64Array(sk)
    const dp = new Float64Array(sk)
    for (let bi = 0; bi < b; bi++) {
      for (let h = 0; h < hq; h++) {
        const kh = Math.floor(h / group)
        for (let i = 0; i < sq; i++) {
          const m = lse[(bi * hq + h) * sq + i] as number
          if (m === Number.NEGATIVE_INFINITY) continue // no visible key: zero gradient
          const qo = qAt(bi, i, h)
          const go = oAt(bi, i, h)
          let delta = 0
          for (let j = 0; j < sk; j++) {
            if (!visible(bi, i, j)) continue
            const p = Math.exp(score(qo, kAt(bi, j, kh)) - m)
            const vo = vAt(bi, j, kh)
            let gv = 0
            for (let e = 0; e < dv; e++) gv += (gy[go + e] as number) * (vs[vo + e] as number)
            probs[j] = p
            dp[j] = gv
            delta += p * gv
          }
          for (let j = 0; j < sk; j++) {
            if (!visible(bi, i, j)) continue
            const p = probs[j] as number
            const ds = scale * p * ((dp[j] as number) - delta)
            const ko = kAt(bi, j, kh)
            const vo = vAt(bi, j, kh)
            for (let e = 0; e < d; e++) {
              dq[qo + e] = (dq[qo + e] as number) + ds * (ks[ko + e] as number)
              dk[ko + e] = (dk[ko + e] as number) + ds * (qs[qo + e] as number)
            }
            for (let e = 0; e < dv; e++) dvAcc[vo + e] = (dvAcc[vo + e] as number) + p * (gy[go + e] as number)
          }
        }
      }
    }
    const wrap = (t: Tensor.Tensor, data: Float64Array): Tensor.Tensor | undefined => {
      if (!t.requiresGrad) return undefined
      const storage = DType.allocate(t.dtype, t.size)
      storage.set(data)
      return Tensor.fromStorage(storage, t.shape, { device: g.device })
    }
    return [wrap(q, dq), wrap(k, dk), wrap(v, dvAcc), ...sinkGradient(sinks, g, out, lse, l)]
  })
}

/** The op's inputs: q, k, v and the sinks where given. */
const inputsOf = (q: Tensor.Tensor, k: Tensor.Tensor, v: Tensor.Tensor, sinks: Tensor.Tensor | undefined) => (sinks === undefined ? [q, k, v] : [q, k, v, sinks])

/** The sinks' gradient as the op's fourth (empty without sinks; undefined when they need none). */
const sinkGradient = (sinks: Tensor.Tensor | undefined, g: Tensor.Tensor, out: DType.Storage, lse: Float64Array, l: Layout): Array<Tensor.Tensor | undefined> => {
  if (sinks === undefined) return []
  if (!sinks.requiresGrad) return [undefined]
  const dz = AttentionSinks.gradient(g.data, out, lse, sinks.data, l)
  const storage = DType.allocate(sinks.dtype, sinks.size)
  storage.set(dz)
  return [Tensor.fromStorage(storage, sinks.shape, { device: g.device })]
}

/**
 * The float32 path: the native flash-style kernels (same semantics, positions, first keys and empty rows
 * included; properties/native checks them against this file's float64 loops).
 */
const nativeAttention = (q: Tensor.Tensor, k: Tensor.Tensor, v: Tensor.Tensor, l: Layout, scale: number, causal: boolean, options: AttentionOptions): Tensor.Tensor => {
  const shape = shapeOf(l, scale, causal, options)
  const f32 = (t: Tensor.Tensor) => t.data as Float32Array
  // From DType (slabs and the recycler, which take them back once dead), not new ArrayBuffers.
  const out = DType.allocateUninitialized("float32", l.b * l.sq * l.hq * l.dv) as Float32Array
  const lse = DType.allocateUninitialized("float64", l.b * l.hq * l.sq) as Float64Array
  Cpu.attention({ q: f32(q), k: f32(k), v: f32(v), out, lse, ...shape })
  const sinks = options.sinks
  if (sinks !== undefined) AttentionSinks.fold(out, lse, sinks.data, l)
  return Autograd.result("attention", inputsOf(q, k, v, sinks), out, [l.b, l.sq, l.hq, l.dv], (g) => {
    const gradQ = DType.allocate("float32", q.size) as Float32Array
    const gradK = DType.allocate("float32", k.size) as Float32Array
    const gradV = DType.allocate("float32", v.size) as Float32Array
    Cpu.attentionBackward({ q: f32(q), k: f32(k), v: f32(v), out, gradOut: f32(g), lse, gradQ, gradK, gradV, ...shape })
    const wrap = (t: Tensor.Tensor, data: Float32Array) => (t.requiresGrad ? Tensor.fromStorage(data, t.shape, { device: g.device }) : undefined)
    return [wrap(q, gradQ), wrap(k, gradK), wrap(v, gradV), ...sinkGradient(sinks, g, out, lse, l)]
  })
}

/** The kernels' shape and masking of an attention call. */
const shapeOf = (l: Layout, scale: number, causal: boolean, options: AttentionOptions): Cpu.AttentionShape => ({
  b: l.b,
  sq: l.sq,
  sk: l.sk,
  hq: l.hq,
  hkv: l.hkv,
  d: l.d,
  dv: l.dv,
  scale,
  causal,
  ...(options.queryPositions === undefined ? {} : { queryPositions: options.queryPositions }),
  ...(options.keyPositions === undefined ? {} : { keyPositions: options.keyPositions }),
  ...(options.queryFirstKeys === undefined ? {} : { queryFirstKeys: options.queryFirstKeys }),
})

/** The float32 path on a device: the device's attention kernels, the native kernels' contract; the sinks folded around them. */
const deviceAttention = (
  place: Place.Place,
  q: Tensor.Tensor,
  k: Tensor.Tensor,
  v: Tensor.Tensor,
  sinks: Tensor.Tensor | undefined,
  l: Layout,
  shape: Cpu.AttentionShape,
): Tensor.Tensor => {
  const rt = place.runtime as DeviceRuntime
  const out = rt.allocate("float32", l.b * l.sq * l.hq * l.dv)
  const lse = rt.allocate("float64", l.b * l.hq * l.sq)
  const operands = { q: q.deviceArray(rt), k: k.deviceArray(rt), v: v.deviceArray(rt) }
  rt.kernels.attention({ out, lse, ...shape, ...operands })
  if (sinks !== undefined) rt.kernels.sinksFold(out, lse, sinks.deviceArray(rt), l)
  return Autograd.result("attention", inputsOf(q, k, v, sinks), out, [l.b, l.sq, l.hq, l.dv], (g) => {
    const grads = { gradQ: rt.zeros("float32", q.size), gradK: rt.zeros("float32", k.size), gradV: rt.zeros("float32", v.size) }
    const gradOut = g.deviceArray(rt)
    rt.kernels.attentionBackward({ out, lse, gradOut, ...shape, ...operands, ...grads })
    const wrap = (t: Tensor.Tensor, data: DeviceArray) => (t.requiresGrad ? Place.tensor(data, t.shape, g.device) : undefined)
    const dz = sinks?.requiresGrad === true ? rt.allocate(sinks.dtype, sinks.size) : undefined
    if (sinks !== undefined && dz !== undefined) rt.kernels.sinksGradient(gradOut, out, lse, sinks.deviceArray(rt), l, dz)
    const sinkGrad = sinks === undefined ? [] : [dz === undefined ? undefined : Place.tensor(dz, sinks.shape, g.device)]
    return [wrap(q, grads.gradQ), wrap(k, grads.gradK), wrap(v, grads.gradV), ...sinkGrad]
  })
}
