// The MoE blocks of the independent transformers reading (hfReference.ts) whose routers are their
// own: dots1's (DeepSeek-V3's and GLM-4.5's), DeepSeek-V2's and GPT-OSS's, from transformers'
// modeling code, in float64 loops. They share no code with src/.
import type { Stored } from "./hfModelDir.js"
import { linear, type Matrix, sigmoid, swiglu } from "./hfOps.js"

/**
 * DeepSeek-V2's MoE block: a softmax over every expert; the top-k scores (within the topk_group
 * groups of n_group whose best expert scores highest, under group_limited_greedy: the others'
 * scores set to 0), weighted as they are times routed_scaling_factor; plus the ungated shared
 * experts.
 */
export const deepSeekV2Moe = (h: Matrix, logits: Matrix, get: (name: string) => Stored, block: string, c: Record<string, unknown>, experts: number, topk: number): Matrix => {
  const limited = c.topk_method === "group_limited_greedy"
  const groups = limited ? (c.n_group as number) : 1
  const per = experts / groups
  return h.map((row, s) => {
    const z = logits[s] as Float64Array
    const top = Math.max(...z)
    const e = Array.from(z, (v) => Math.exp(v - top))
    const sum = e.reduce((a, b) => a + b, 0)
    const scores = e.map((v) => v / sum)
    const best = Array.from({ length: groups }, (_, g) => Math.max(...scores.slice(g * per, (g + 1) * per)))
    const kept = new Set(
      best
        .map((v, g) => ({ v, g }))
        .sort((a, b) => b.v - a.v || a.g - b.g)
        .slice(0, limited ? (c.topk_group as number) : groups)
        .map((x) => x.g),
    )
    const picked = scores
      .map((v, i) => ({ v: kept.has(Math.floor(i / per)) ? v : 0, i }))
      .sort((a, b) => b.v - a.v || a.i - b.i)
      .slice(0, topk)
    const out = new Float64Array(row.length)
    for (const { v, i } of picked) {
      const y = swiglu([row], get, `${block}experts.${i}.`, ["gate_proj", "up_proj", "down_proj"])[0] as Float64Array
      for (let j = 0; j < row.length; j++) out[j] = (out[j] as number) + v * (c.routed_scaling_factor as number) * (y[j] as number)
    }
    const shared = swiglu([row], get, `${block}shared_experts.`, ["gate_proj", "up_proj", "down_proj"])[0] as Float64Array
    return out.map((v, j) => v + (shared[j] as number))
  })
}

/**
 * dots1's MoE block (DeepSeek-V3's router): sigmoid scores; selection on scores + the expert
 * bias, within the topk_group of n_group groups scored by their top 2; weights the scores of the
 * selected, renormalized (norm_topk_prob, + 1e-20), times routed_scaling_factor; plus the
 * ungated shared experts.
 */
export const dots1Moe = (h: Matrix, logits: Matrix, get: (name: string) => Stored, block: string, c: Record<string, unknown>, experts: number, topk: number): Matrix => {
  const bias = get(`${block}gate.e_score_correction_bias`).values
  const groups = c.n_group as number
  const keep = c.topk_group as number
  const per = experts / groups
  return h.map((row, s) => {
    const scores = Array.from(logits[s] as Float64Array, sigmoid)
    const choice = scores.map((v, e) => v + (bias[e] as number))
    const groupScore = Array.from({ length: groups }, (_, g) => {
      const top = choice.slice(g * per, (g + 1) * per).sort((a, b) => b - a)
      return (top[0] as number) + (top[1] as number)
    })
    const kept = new Set(
      groupScore
        .map((v, g) => ({ v, g }))
        .sort((a, b) => b.v - a.v || a.g - b.g)
        .slice(0, keep)
        .map((x) => x.g),
    )
    const picked = choice
      .map((v, e) => ({ v: kept.has(Math.floor(e / per)) ? v : Number.NEGATIVE_INFINITY, e }))
      .sort((a, b) => b.v - a.v || a.e - b.e)
      .slice(0, topk)
      .map((x) => x.e)
    const total = c.norm_topk_prob === true ? picked.reduce((a, e) => a + (scores[e] as number), 0) + 1e-20 : 1
    const out = new Float64Array(row.length)
    for (const e of picked) {
      const w = ((scores[e] as number) / total) * (c.routed_scaling_factor as number)
      const y = swiglu([row], get, `${block}experts.${e}.`, ["gate_proj", "up_proj", "down_proj"])[0] as Float64Array
      for (let j = 0; j < row.length; j++) out[j] = (out[j] as number) + w * (y[j] as number)
    }
    const shared = swiglu([row], get, `${block}shared_experts.`, ["gate_proj", "up_proj", "down_proj"])[0] as Float64Array
    return out.map((v, j) => v + (shared[j] as number))
  })
}

/**
 * GPT-OSS's MoE block: the router's logits (with its bias), a softmax over the top-k of them;
 * each expert's gate_up_proj [H, 2F] (with its bias), gate in the even columns and up in the odd,
 * clamped at 7 (transformers' fixed limit; up on both sides), gate * sigmoid(1.702 gate) * (up + 1),
 * then down_proj [F, H] with its bias, the whole weighted.
 */
export const gptOssMoe = (h: Matrix, get: (name: string) => Stored, block: string, experts: number, topk: number): Matrix => {
  const logits = linear(h, get(`${block}router.weight`), get(`${block}router.bias`))
  const gateUp = get(`${block}experts.gate_up_proj`)
  const gateUpBias = get(`${block}experts.gate_up_proj_bias`).values
  const down = get(`${block}experts.down_proj`)
  const downBias = get(`${block}experts.down_proj_bias`).values
  const [, hidden, twoF] = gateUp.shape as [number, number, number]
  const f = twoF / 2
  return h.map((row, s) => {
    const z = logits[s] as Float64Array
    const picked = Array.from(z, (v, e) => ({ v, e }))
      .sort((a, b) => b.v - a.v || a.e - b.e)
      .slice(0, topk)
    const top = Math.max(...picked.map((x) => x.v))
    const sum = picked.reduce((a, x) => a + Math.exp(x.v - top), 0)
    const out = new Float64Array(hidden)
    for (const { v, e } of picked) {
      if (e >= experts) throw new Error(`expert ${e} of ${experts}`)
      const w = Math.exp(v - top) / sum
      const act = new Float64Array(f)
      for (let j = 0; j < f; j++) {
        let g = gateUpBias[e * twoF + 2 * j] as number
        let u = gateUpBias[e * twoF + 2 * j + 1] as number
        for (let i = 0; i < hidden; i++) {
          g += (row[i] as number) * (gateUp.values[(e * hidden + i) * twoF + 2 * j] as number)
          u += (row[i] as number) * (gateUp.values[(e * hidden + i) * twoF + 2 * j + 1] as number)
        }
        g = Math.min(g, 7)
        u = Math.max(-7, Math.min(u, 7))
        act[j] = g * sigmoid(1.702 * g) * (u + 1)
      }
      for (let k = 0; k < hidden; k++) {
        let y = downBias[e * hidden + k] as number
        for (let j = 0; j < f; j++) y += (act[j] as number) * (down.values[(e * f + j) * hidden + k] as number)
        out[k] = (out[k] as number) + w * y
      }
    }
    return out
  })
}
