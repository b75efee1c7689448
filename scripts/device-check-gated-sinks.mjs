// device-check-gated-sinks.mjs: the GPU checks of the gated activation (Megatron-Core's options,
// GPT-OSS's clamped GLU) and the attention sinks' fold and gradient (cuda/src/kernels/
// gated_sinks_cuda.h) against their twins: the CPU kernel's scalar path and
// tensor/kernels/AttentionSinks.ts. Called by device-check-kernels.mjs with its helpers where a
// device is; properties/native/gatedSinksTwins.ts has the same checks over random shapes.
import path from "node:path"

export const gatedSinksChecks = async ({ root, check, assert, ops, floats, ulps }) => {
  const Cpu = await import(path.join(root, "dist/native/Cpu.js"))
  const CpuOptional = await import(path.join(root, "dist/native/CpuOptional.js"))
  const AttentionSinks = await import(path.join(root, "dist/tensor/kernels/AttentionSinks.js"))
  // ulps with NaN against NaN agreeing (their bits may differ).
  const nanUlps = (a, b) =>
    ulps(
      a.map((v, i) => (Number.isNaN(v) && Number.isNaN(b[i]) ? 0 : v)),
      b.map((v, i) => (Number.isNaN(v) && Number.isNaN(a[i]) ? 0 : v)),
    )
  check("gatedActivation and its backward (alpha, offset, clamped or not; +-limit and NaN): within one ulp of the CPU's scalar kernel", () => {
    const cpu = CpuOptional.gatedActivationKernels()
    assert(cpu !== undefined, "the CPU addon has no gatedActivation kernels")
    const n = 1 << 22
    const [gate, up, grad] = [floats(n).map((v) => v * 3), floats(n).map((v) => v * 3), floats(n)]
    let worst = 0
    for (const [alpha, offset, limit] of [
      [1.702, 1, 7],
      [1, 0, 1.5],
      [1.702, 0, null],
    ]) {
      for (let i = 0; i < n; i += 97) {
        gate[i] = limit ?? 7
        up[i + 1] = -(limit ?? 7)
        gate[i + 2] = Number.NaN
      }
      const glu = { alpha, offset, limit: limit ?? undefined }
      const want = [new Float32Array(n), new Float32Array(n), new Float32Array(n)]
      const got = [new Float32Array(n), new Float32Array(n), new Float32Array(n)]
      const isa = Cpu.activeIsa()
      Cpu.setIsa("scalar")
      try {
        cpu.forward(gate, up, want[0], glu)
        cpu.backward(gate, up, grad, want[1], want[2], glu)
      } finally {
        Cpu.setIsa(isa)
      }
      ops.gatedActivation(gate, up, got[0], alpha, offset, limit)
      ops.gatedActivationBackward(gate, up, grad, got[1], got[2], alpha, offset, limit)
      for (let k = 0; k < 3; k++) worst = Math.max(worst, nanUlps(got[k], want[k]))
    }
    assert(worst <= 1, `${worst} ulps`)
    return { worstUlps: worst }
  })
  check("attention sinks: fold (out within one ulp, lse within 8 eps (1 + |lse|)) and gradient (dz within one ulp) of AttentionSinks.ts", () => {
    let worst = { out: 0, lse: 0, dz: 0 }
    for (const [b, sq, hq, dv] of [
      [1, 1, 1, 1],
      [2, 512, 8, 64],
      [1, 2048, 16, 128],
      [3, 100, 4, 1],
    ]) {
      const rows = b * hq * sq
      const dims = { b, sq, hq, dv }
      const [out, g, sinks] = [floats(rows * dv), floats(rows * dv), floats(hq)]
      const lse = Float64Array.from(floats(rows), (v) => v * 2)
      // Rows that saw no key: lse -inf, out zero.
      for (let r = 0; r < rows; r += 7) lse[r] = Number.NEGATIVE_INFINITY
      for (let bi = 0; bi < b; bi++)
        for (let h = 0; h < hq; h++)
          for (let i = 0; i < sq; i++) if (lse[(bi * hq + h) * sq + i] === Number.NEGATIVE_INFINITY) out.fill(0, ((bi * sq + i) * hq + h) * dv, ((bi * sq + i) * hq + h + 1) * dv)
      const want = { out: Float32Array.from(out), lse: Float64Array.from(lse) }
      AttentionSinks.fold(want.out, want.lse, sinks, dims)
      const wantDz = Float32Array.from(AttentionSinks.gradient(g, want.out, want.lse, sinks, dims))
      const got = { out: Float32Array.from(out), lse: Float64Array.from(lse), dz: new Float32Array(hq) }
      ops.attentionSinksFold(got.out, got.lse, sinks, b, sq, hq, dv)
      ops.attentionSinksGradient(g, want.out, want.lse, sinks, b, sq, hq, dv, got.dz)
      let lseRatio = 0
      want.lse.forEach((w, r) => (lseRatio = Math.max(lseRatio, Math.abs(got.lse[r] - w) / (8 * Number.EPSILON * (1 + Math.abs(w))))))
      worst = { out: Math.max(worst.out, ulps(got.out, want.out)), lse: Math.max(worst.lse, lseRatio), dz: Math.max(worst.dz, ulps(got.dz, wantDz)) }
    }
    assert(worst.out <= 1 && worst.lse <= 1 && worst.dz <= 1, `out ${worst.out} ulps, lse ${worst.lse} of its bound, dz ${worst.dz} ulps`)
    return worst
  })
}
