// An independent reading of a Hugging Face model directory and the forward of the nine
// architectures `pleat export` writes, written from transformers' modeling code (Mixtral,
// Qwen2-MoE, Qwen3-MoE: RMSNorm, rotate-half RoPE, grouped-query causal attention, softmax top-k
// routing, SwiGLU experts, Qwen2-MoE's gated shared expert, Qwen3-MoE's q/k norms per head and
// head_dim, biases where the file has them, dense mlp_only_layers; dots1: Qwen3's attention with
// DeepSeek-V3's sigmoid router, expert bias, groups, scaling and shared experts; DeepSeek-V3:
// dots1's MoE with multi-latent attention, its rotary pairs interleaved (2i, 2i+1) under
// rope_interleave, latent norms at 1e-6, softmax scale 1/sqrt(qk_head_dim); GPT-OSS: softmax sinks
// per head, sliding windows on the layers layer_types names, a router with a bias, fused
// interleaved gate_up experts with biases and the clamped quick-GELU GLU; GLM-4.5: dots1's MoE
// with q/k/v biases, optional q/k norms and GPT-NeoX's partial rotary on each head's first
// partial_rotary_factor; DeepSeek-V2: DeepSeek-V3's attention with a softmax over every expert,
// its top-k unnormalized times routed_scaling_factor, groups scored by their best expert), in
// float64 loops; OLMoE: Qwen3-MoE's layers with its q and k norms over the whole q and k.
// It shares no code with src/: the safetensors parser (hfModelDir.ts), the name scheme and every op
// (hfOps.ts, the MoE blocks of their own routers in hfMoeBlocks.ts) are its own.
import type { ModelDir, Stored } from "./hfModelDir.js"
import { deepSeekV2Moe, dots1Moe, gptOssMoe } from "./hfMoeBlocks.js"
import { add, linear, type Matrix, rmsNorm, sigmoid, swiglu } from "./hfOps.js"

/**
 * Llama 3's RoPE scaling as transformers' `_compute_llama3_parameters` writes it: the frequency
 * of pair i kept, divided by the factor, or blended between, by its wavelength against the
 * pretraining length over the high and low frequency factors.
 */
type Llama3 = { readonly factor: number; readonly low: number; readonly high: number; readonly original: number }

const llama3Frequency = (f: number, l: Llama3): number => {
  const wavelen = (2 * Math.PI) / f
  const scaled = wavelen > l.original / l.low ? f / l.factor : f
  const smooth = (l.original / wavelen - l.low) / (l.high - l.low)
  const medium = !(wavelen < l.original / l.high) && !(wavelen > l.original / l.low)
  return medium ? ((1 - smooth) * scaled) / l.factor + smooth * scaled : scaled
}

/** The config's Llama 3 scaling (rope_scaling or rope_parameters of rope_type llama3), or undefined. */
const llama3Of = (c: Record<string, unknown>): Llama3 | undefined => {
  const keys = [c.rope_parameters, c.rope_scaling].find((k) => typeof k === "object" && k !== null && (k as Record<string, unknown>).rope_type === "llama3") as
    | Record<string, number>
    | undefined
  return keys === undefined
    ? undefined
    : { factor: keys.factor as number, low: keys.low_freq_factor as number, high: keys.high_freq_factor as number, original: keys.original_max_position_embeddings as number }
}

/**
 * Rotate-half RoPE of each head of x [S, heads * d] at positions 0..S-1 (Llama 3's frequencies
 * where given) on each head's first r dimensions (GPT-NeoX's partial rotary, GLM-4.5's), at r's
 * frequencies; the rest as they are.
 */
const rope = (x: Matrix, heads: number, d: number, theta: number, llama3?: Llama3, r = d): Matrix =>
  x.map((row, pos) => {
    const out = Float64Array.from(row)
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < r / 2; i++) {
        const f = 1 / theta ** ((2 * i) / r)
        const angle = pos * (llama3 === undefined ? f : llama3Frequency(f, llama3))
        const a = row[h * d + i] as number
        const b = row[h * d + i + r / 2] as number
        out[h * d + i] = a * Math.cos(angle) - b * Math.sin(angle)
        out[h * d + i + r / 2] = b * Math.cos(angle) + a * Math.sin(angle)
      }
    }
    return out
  })

/** The RoPE angle of pair i of a rotary part of width d at position pos. */
const angleOf = (pos: number, i: number, d: number, theta: number) => pos / theta ** ((2 * i) / d)

/**
 * DeepSeek-V3's multi-latent attention of layer prefix `p` on h [S, hidden]: q from the query
 * latent (q_lora_rank) or straight (q_proj); the kv latent and one shared rotary key from
 * kv_a_proj_with_mqa; RoPE on each head's last dr query dims and on the shared key, turning the
 * pairs (2i, 2i+1) when the config interleaves, else (i, i + dr/2); causal softmax attention
 * over [nope, rope] with scale 1/sqrt(dn + dr); o_proj over the heads' values.
 */
const latentAttention = (h: Matrix, get: (name: string) => Stored, p: string, c: Record<string, unknown>, heads: number, theta: number): Matrix => {
  const [dn, dr, dv, kvLora] = [c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim, c.kv_lora_rank] as [number, number, number, number]
  const a = `${p}self_attn.`
  const q =
    c.q_lora_rank === null
      ? linear(h, get(`${a}q_proj.weight`))
      : linear(rmsNorm(linear(h, get(`${a}q_a_proj.weight`)), get(`${a}q_a_layernorm.weight`), 1e-6), get(`${a}q_b_proj.weight`))
  const kvA = linear(h, get(`${a}kv_a_proj_with_mqa.weight`))
  const kv = linear(
    rmsNorm(
      kvA.map((row) => row.slice(0, kvLora)),
      get(`${a}kv_a_layernorm.weight`),
      1e-6,
    ),
    get(`${a}kv_b_proj.weight`),
  )
  /** The rotary part `x` (width dr) at position pos, turned. */
  const turn = (x: Float64Array, pos: number): Float64Array => {
    const out = new Float64Array(dr)
    for (let i = 0; i < dr / 2; i++) {
      const [ia, ib] = c.rope_interleave === false ? [i, i + dr / 2] : [2 * i, 2 * i + 1]
      const angle = angleOf(pos, i, dr, theta)
      out[ia] = (x[ia] as number) * Math.cos(angle) - (x[ib] as number) * Math.sin(angle)
      out[ib] = (x[ib] as number) * Math.cos(angle) + (x[ia] as number) * Math.sin(angle)
    }
    return out
  }
  const keyRope = kvA.map((row, pos) => turn(row.slice(kvLora, kvLora + dr), pos))
  const attended: Matrix = q.map((qs, s) => {
    const out = new Float64Array(heads * dv)
    for (let hd = 0; hd < heads; hd++) {
      const base = hd * (dn + dr)
      const qRope = turn(qs.slice(base + dn, base + dn + dr), s)
      const scores = Array.from({ length: s + 1 }, (_, t) => {
        const k = kv[t] as Float64Array
        let dot = 0
        for (let i = 0; i < dn; i++) dot += (qs[base + i] as number) * (k[hd * (dn + dv) + i] as number)
        for (let i = 0; i < dr; i++) dot += (qRope[i] as number) * (keyRope[t]?.[i] as number)
        return dot / Math.sqrt(dn + dr)
      })
      const top = Math.max(...scores)
      const e = scores.map((z) => Math.exp(z - top))
      const sum = e.reduce((x, y) => x + y, 0)
      for (let t = 0; t <= s; t++)
        for (let i = 0; i < dv; i++) out[hd * dv + i] = (out[hd * dv + i] as number) + ((e[t] as number) / sum) * (kv[t]?.[hd * (dn + dv) + dn + i] as number)
    }
    return out
  })
  return linear(attended, get(`${a}o_proj.weight`))
}

/** The mean next-token cross-entropy of `window` (seq + 1 ids) under the model in `m`. */
export const lmLoss = (m: ModelDir, window: ReadonlyArray<number>): number => {
  const c = m.config
  const get = (name: string): Stored => {
    const t = m.tensors.get(name)
    if (t === undefined) throw new Error(`the model directory has no ${name}`)
    return t
  }
  const mixtral = c.model_type === "mixtral"
  const gptOss = c.model_type === "gpt_oss"
  const num = (key: string): number => {
    const v = c[key]
    if (typeof v !== "number") throw new Error(`config.json has no number ${key}`)
    return v
  }
  const [hidden, heads, kv, layers, topk, eps, theta] = [
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "num_hidden_layers",
    "num_experts_per_tok",
    "rms_norm_eps",
    "rope_theta",
  ].map(num) as [number, number, number, number, number, number, number]
  // DeepSeek-V2: DeepSeek-V3's attention (its rotary pairs always interleaved) and dense layers, its own router.
  const deepseekV2 = c.model_type === "deepseek_v2"
  const deepseek = c.model_type === "deepseek_v3" || deepseekV2
  const llama3 = llama3Of(c)
  // DeepSeek-V3's MoE is dots1's, and GLM-4.5's.
  const glm = c.model_type === "glm4_moe"
  const dots1 = c.model_type === "dots1" || deepseek || glm
  const experts = num(mixtral || gptOss ? "num_local_experts" : dots1 ? "n_routed_experts" : "num_experts")
  // Qwen3 (and any config with head_dim) sets the head width; else hidden / heads.
  const d = typeof c.head_dim === "number" ? c.head_dim : hidden / heads
  // dots1's attention is Qwen3's.
  const qwen3 = c.model_type === "qwen3_moe" || c.model_type === "dots1"
  // OLMoE: Qwen3-MoE's layers with q_norm and k_norm over the whole q and k.
  const olmoe = c.model_type === "olmoe"
  // GLM-4.5: q/k norms with use_qk_norm; RoPE on the first partial_rotary_factor of each head.
  const headNorms = qwen3 || (glm && c.use_qk_norm === true)
  const partial = glm ? (((c.rope_parameters as Record<string, unknown> | undefined)?.partial_rotary_factor ?? c.partial_rotary_factor ?? 0.5) as number) : 1
  const rotary = Math.floor(d * partial)
  /** Qwen3's RMSNorm over each head of x [S, heads * d], one weight [d] for every head. */
  const headNorm = (x: Matrix, count: number, w: Stored): Matrix =>
    x.map((row) => {
      const out = new Float64Array(row.length)
      for (let h = 0; h < count; h++) {
        const normed = rmsNorm([row.slice(h * d, (h + 1) * d)], w, eps)[0] as Float64Array
        out.set(normed, h * d)
      }
      return out
    })
  const qk = (x: Matrix, count: number, p: string, which: "q" | "k"): Matrix => {
    const w = () => get(`${p}self_attn.${which}_norm.weight`)
    return olmoe ? rmsNorm(x, w(), eps) : headNorms ? headNorm(x, count, w()) : x
  }
  /**
   * Grouped-query attention (Mixtral's, the Qwens', dots1's, GPT-OSS's) of layer `l`, prefix `p`, on
   * h: GPT-OSS's heads have a sink each (a logit in the softmax, no value) and its
   * sliding_attention layers see the last sliding_window keys (the key itself included).
   */
  const groupedQueryAttention = (h: Matrix, p: string, l: number): Matrix => {
    const sinks = gptOss ? get(`${p}self_attn.sinks`).values : undefined
    const windowed = gptOss && (c.layer_types as Array<string>)[l] === "sliding_attention"
    const first = (s: number) => (windowed ? Math.max(0, s - (c.sliding_window as number) + 1) : 0)
    const bias = (n: string) => m.tensors.get(`${p}self_attn.${n}.bias`)
    const q = rope(qk(linear(h, get(`${p}self_attn.q_proj.weight`), bias("q_proj")), heads, p, "q"), heads, d, theta, llama3, rotary)
    const k = rope(qk(linear(h, get(`${p}self_attn.k_proj.weight`), bias("k_proj")), kv, p, "k"), kv, d, theta, llama3, rotary)
    const v = linear(h, get(`${p}self_attn.v_proj.weight`), bias("v_proj"))
    const attended: Matrix = q.map((qs, s) => {
      const out = new Float64Array(heads * d)
      for (let hq = 0; hq < heads; hq++) {
        const hk = Math.floor(hq / (heads / kv))
        const scores = Array.from({ length: s + 1 }, (_, t) => {
          if (t < first(s)) return Number.NEGATIVE_INFINITY
          let dot = 0
          for (let i = 0; i < d; i++) dot += (qs[hq * d + i] as number) * (k[t]?.[hk * d + i] as number)
          return dot / Math.sqrt(d)
        })
        const sink = sinks === undefined ? Number.NEGATIVE_INFINITY : (sinks[hq] as number)
        const top = Math.max(...scores, sink)
        const e = scores.map((z) => Math.exp(z - top))
        const sum = e.reduce((a, b) => a + b, 0) + Math.exp(sink - top)
        for (let t = 0; t <= s; t++) for (let i = 0; i < d; i++) out[hq * d + i] = (out[hq * d + i] as number) + ((e[t] as number) / sum) * (v[t]?.[hk * d + i] as number)
      }
      return out
    })
    return linear(attended, get(`${p}self_attn.o_proj.weight`), bias("o_proj"))
  }
  const inputs = window.slice(0, -1)
  const embed = get("model.embed_tokens.weight")
  let x: Matrix = inputs.map((t) => embed.values.slice(t * hidden, (t + 1) * hidden))
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`
    const h = rmsNorm(x, get(`${p}input_layernorm.weight`), eps)
    if (deepseek) x = add(x, latentAttention(h, get, p, c, heads, theta))
    else x = add(x, groupedQueryAttention(h, p, l))
    const h2 = rmsNorm(x, get(`${p}post_attention_layernorm.weight`), eps)
    const dense = dots1
      ? l < (c.first_k_dense_replace as number)
      : !mixtral && !gptOss && !olmoe && ((c.mlp_only_layers as Array<number>).includes(l) || (l + 1) % (c.decoder_sparse_step as number) !== 0)
    if (dense) {
      x = add(x, swiglu(h2, get, `${p}mlp.`, ["gate_proj", "up_proj", "down_proj"]))
      continue
    }
    if (gptOss) {
      x = add(x, gptOssMoe(h2, get, `${p}mlp.`, experts, topk))
      continue
    }
    const block = mixtral ? `${p}block_sparse_moe.` : `${p}mlp.`
    const names = mixtral ? (["w1", "w3", "w2"] as const) : (["gate_proj", "up_proj", "down_proj"] as const)
    const logits = linear(h2, get(`${block}gate.weight`))
    if (deepseekV2) {
      x = add(x, deepSeekV2Moe(h2, logits, get, block, c, experts, topk))
      continue
    }
    if (dots1) {
      x = add(x, dots1Moe(h2, logits, get, block, c, experts, topk))
      continue
    }
    const moe: Matrix = h2.map((row, s) => {
      const z = logits[s] as Float64Array
      const top = Math.max(...z)
      const e = z.map((v) => Math.exp(v - top))
      const sum = e.reduce((a, b) => a + b, 0)
      const probs = Array.from(e, (v, i) => ({ p: v / sum, i }))
        .sort((a, b) => b.p - a.p || a.i - b.i)
        .slice(0, topk)
      const norm = mixtral || c.norm_topk_prob === true ? probs.reduce((a, b) => a + b.p, 0) : 1
      const out = new Float64Array(hidden)
      for (const { p: w, i } of probs) {
        if (i >= experts) throw new Error(`expert ${i} of ${experts}`)
        const y = swiglu([row], get, `${block}experts.${i}.`, names)[0] as Float64Array
        for (let j = 0; j < hidden; j++) out[j] = (out[j] as number) + (w / norm) * (y[j] as number)
      }
      if (!mixtral && !qwen3 && !olmoe) {
        const shared = swiglu([row], get, `${block}shared_expert.`, ["gate_proj", "up_proj", "down_proj"])[0] as Float64Array
        const gate = sigmoid((linear([row], get(`${block}shared_expert_gate.weight`))[0] as Float64Array)[0] as number)
        for (let j = 0; j < hidden; j++) out[j] = (out[j] as number) + gate * (shared[j] as number)
      }
      return out
    })
    x = add(x, moe)
  }
  const final = rmsNorm(x, get("model.norm.weight"), eps)
  const head = c.tie_word_embeddings === true ? embed : get("lm_head.weight")
  const logits = linear(final, head)
  let loss = 0
  logits.forEach((z, s) => {
    const top = Math.max(...z)
    const lse = top + Math.log(z.reduce((a, v) => a + Math.exp(v - top), 0))
    loss += lse - (z[window[s + 1] as number] as number)
  })
  return loss / logits.length
}
