// moe-layer-reference.mjs: the MoE layer that cuda/src/moe_layer_timing.cc runs, in float64 loops
// over tokens, for scripts/device-check to hold the device's results against on small shapes.
// The routing is the device's (which experts each token chose and their probs: the router kernel
// has its own twin check), so a near-tie in the router cannot make the two differ; every value the
// device rounds to bfloat16 before a GEMM (the permuted rows, the activations, the row and
// SwiGLU gradients, the expert weights) is rounded here too when `round` is given, so what is
// left between the two is float32 accumulation order (and a bf16 rounding that a last-bit
// difference tips the other way). Without `round` the layer is a smooth function of its inputs,
// which properties/native/MoeLayerReference.test.ts checks against finite differences.
//
// Inputs: x, dy [T, H]; wg, wu [E, H, F]; wd [E, F, H]; chosen [T, k] expert per slot; probs
// [T, E] dense. Returns out, dx [T, H] and dwg, dwu [E, H, F], dwd [E, F, H] as Float64Arrays.

const silu = (g) => g / (1 + Math.exp(-g))
const dsilu = (g) => {
  const s = 1 / (1 + Math.exp(-g))
  return s * (1 + g * (1 - s))
}

export const reference = ({ x, dy, wg, wu, wd, chosen, probs }, { tokens: T, hidden: H, ffn: F, experts: E, topk: k }, round = (v) => v) => {
  const r = (a) => Float64Array.from(a, round)
  const [wg16, wu16, wd16] = [r(wg), r(wu), r(wd)]
  const out = new Float64Array(T * H)
  const dx = new Float64Array(T * H)
  const dwg = new Float64Array(E * H * F)
  const dwu = new Float64Array(E * H * F)
  const dwd = new Float64Array(E * F * H)
  for (let t = 0; t < T; t++) {
    const xr = Float64Array.from(x.subarray(t * H, (t + 1) * H), round)
    for (let slot = 0; slot < k; slot++) {
      const e = chosen[t * k + slot]
      const p = probs[t * E + e]
      const g = new Float64Array(F)
      const u = new Float64Array(F)
      for (let f = 0; f < F; f++)
        for (let h = 0; h < H; h++) {
          g[f] += xr[h] * wg16[(e * H + h) * F + f]
          u[f] += xr[h] * wu16[(e * H + h) * F + f]
        }
      const act = Float64Array.from(g, (gv, f) => round(silu(gv) * u[f]))
      // Forward: the token's rows weighted by their probs and summed.
      for (let h = 0; h < H; h++) {
        let y = 0
        for (let f = 0; f < F; f++) y += act[f] * wd16[(e * F + f) * H + h]
        out[t * H + h] += p * y
      }
      // Backward from dy: the row's gradient, then the down, SwiGLU and gate / up projections.
      const dyp = Float64Array.from(dy.subarray(t * H, (t + 1) * H), (v) => round(v * p))
      const dact = new Float64Array(F)
      for (let f = 0; f < F; f++)
        for (let h = 0; h < H; h++) {
          dact[f] += dyp[h] * wd16[(e * F + f) * H + h]
          dwd[(e * F + f) * H + h] += act[f] * dyp[h]
        }
      const dg = Float64Array.from(g, (gv, f) => round(dact[f] * u[f] * dsilu(gv)))
      const du = Float64Array.from(g, (gv, f) => round(dact[f] * silu(gv)))
      for (let h = 0; h < H; h++) {
        let d = 0
        for (let f = 0; f < F; f++) {
          d += dg[f] * wg16[(e * H + h) * F + f] + du[f] * wu16[(e * H + h) * F + f]
          dwg[(e * H + h) * F + f] += xr[h] * dg[f]
          dwu[(e * H + h) * F + f] += xr[h] * du[f]
        }
        dx[t * H + h] += d
      }
    }
  }
  return { out, dx, dwg, dwu, dwd }
}

/** The largest |a - b| over the largest |b|: how far the device is from the reference, relative to its scale. */
export const relativeError = (a, b) => {
  let diff = 0
  let scale = 0
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]))
    scale = Math.max(scale, Math.abs(b[i]))
  }
  return scale === 0 ? diff : diff / scale
}
