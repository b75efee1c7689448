// device-check-device-arrays.mjs: the GPU checks of the kernels a training step runs on device
// arrays (flash-tiled attention against the CPU's float64 reference, and timed at 4k tokens; the
// device optimizer's sum of squares and AdamW, transposes, the scatter-add of rows, bf16
// rounding), called by device-check-kernels.mjs with its helpers where a device is.
import path from "node:path"

export const deviceArrayChecks = async ({ root, check, checkAsync, assert, ops, floats, ulps }) => {
  const Cpu = await import(path.join(root, "dist/native/Cpu.js"))
  const CpuOptional = await import(path.join(root, "dist/native/CpuOptional.js"))
  const CudaArrays = await import(path.join(root, "dist/native/CudaArrays.js"))
  const Bf16Round = await import(path.join(root, "dist/tensor/kernels/Bf16Round.js"))
  check(
    "attention forward and backward (GQA, causal): flash-tiled heads within float32's rounding of the CPU's float64 reference, wider heads (element kernels) within one ulp; the flash kernels timed at 4k tokens",
    () => {
      const worst = { out: 0, dq: 0, dk: 0, dv: 0, wideUlps: 0 }
      // |got - want| / (1e-4 (1 + max |want|) + 4e-6 (d + dv)): at most 1 passes (the twins' bound).
      const near = (got, want, floor) => {
        let largest = 0
        for (const w of want) largest = Math.max(largest, Math.abs(w))
        let ratio = 0
        for (let i = 0; i < want.length; i++) ratio = Math.max(ratio, Math.abs(got[i] - want[i]) / (1e-4 * (1 + largest) + floor))
        return ratio
      }
      for (const [b, s, hq, hkv, d] of [
        [1, 1, 1, 1, 1],
        [2, 96, 8, 2, 64],
        [1, 512, 8, 2, 128],
        [1, 200, 4, 4, 256],
        [1, 40, 2, 1, 288],
      ]) {
        const shape = { b, sq: s, sk: s, hq, hkv, d, dv: d, causal: true }
        const [q, k, v] = [floats(b * s * hq * d), floats(b * s * hkv * d), floats(b * s * hkv * d)]
        const rows = b * hq * s
        const [out, lse, gout, glse] = [new Float32Array(rows * d), new Float64Array(rows), new Float32Array(rows * d), new Float64Array(rows)]
        const isa = Cpu.activeIsa()
        Cpu.setIsa("scalar")
        const gradOut = floats(rows * d)
        const want = { gradQ: new Float32Array(q.length), gradK: new Float32Array(k.length), gradV: new Float32Array(v.length) }
        try {
          Cpu.attention({ ...shape, q, k, v, out, lse })
          Cpu.attentionBackward({ ...shape, q, k, v, out, gradOut, lse, ...want })
        } finally {
          Cpu.setIsa(isa)
        }
        ops.attention({ ...shape, q, k, v, out: gout, lse: glse })
        const got = { gradQ: new Float32Array(q.length), gradK: new Float32Array(k.length), gradV: new Float32Array(v.length) }
        ops.attentionBackward({ ...shape, q, k, v, out, gradOut, lse, ...got })
        if (d > 256) {
          worst.wideUlps = Math.max(worst.wideUlps, ulps(gout, out), ulps(got.gradQ, want.gradQ), ulps(got.gradK, want.gradK), ulps(got.gradV, want.gradV))
          continue
        }
        const floor = 4e-6 * 2 * d
        worst.out = Math.max(worst.out, near(gout, out, 0))
        worst.dq = Math.max(worst.dq, near(got.gradQ, want.gradQ, floor))
        worst.dk = Math.max(worst.dk, near(got.gradK, want.gradK, floor))
        worst.dv = Math.max(worst.dv, near(got.gradV, want.gradV, floor))
      }
      assert(Math.max(worst.out, worst.dq, worst.dk, worst.dv) <= 1 && worst.wideUlps <= 1, JSON.stringify(worst))
      // Timed: one 4,096-token sequence, 32 query heads on 8 kv heads of 128 (host arrays staged in and out).
      const [s, hq, hkv, d] = [4096, 32, 8, 128]
      const shape = { b: 1, sq: s, sk: s, hq, hkv, d, dv: d, causal: true }
      const [q, k, v, gradOut] = [floats(s * hq * d), floats(s * hkv * d), floats(s * hkv * d), floats(s * hq * d)]
      const [out, lse] = [new Float32Array(s * hq * d), new Float32Array(hq * s)]
      const grads = { gradQ: new Float32Array(q.length), gradK: new Float32Array(k.length), gradV: new Float32Array(v.length) }
      ops.attention({ ...shape, q, k, v, out, lse })
      let started = performance.now()
      ops.attention({ ...shape, q, k, v, out, lse })
      const forwardMs = performance.now() - started
      started = performance.now()
      ops.attentionBackward({ ...shape, q, k, v, out, gradOut, lse, ...grads })
      const backwardMs = performance.now() - started
      // Causal: half of the 4 s^2 hq d multiply-adds of the forward's two products (2.5x that backward).
      const flops = 2 * 2 * s * s * hq * d * 0.5
      return { worstOfBound: worst, timed4k: { forwardMs, backwardMs, forwardTflops: flops / forwardMs / 1e9, backwardTflops: (2.5 * flops) / backwardMs / 1e9 } }
    },
  )
  check("the optimizer on device arrays: AdamW the CPU's bits, the sum of squares within its rounding of the CPU's and the same twice; swapDims (transpose) exact", () => {
    const loaded = CudaArrays.cudaArrays()
    assert(!("why" in loaded), loaded.why)
    const a = loaded.addon
    const SumSquares = CpuOptional.sumSquaresKernel()
    const worst = { relative: 0 }
    for (const n of [0, 1, 4095, 4097, 1 << 20, 50_000_017]) {
      const x = floats(n)
      const onDevice = a.deviceArrayNew(n, "float32")
      a.deviceArrayCopyIn(onDevice, x)
      const sums = a.deviceArrayNew(2, "float64")
      a.sumSquares(onDevice, sums, 0)
      a.sumSquares(onDevice, sums, 1)
      const got = new Float64Array(2)
      a.deviceArrayCopyOut(sums, got)
      assert(Object.is(got[0], got[1]), `sumSquares ${n}: two runs differ`)
      const want = SumSquares(x)
      const bound = (n / 8 + 60) * 2 ** -53 * want
      assert(Math.abs(got[0] - want) <= bound, `sumSquares ${n}: ${got[0]} against the CPU's ${want}`)
      if (want > 0) worst.relative = Math.max(worst.relative, Math.abs(got[0] - want) / want)
    }
    const n = 3_000_001
    const host = { w: floats(n), g: floats(n), m: floats(n), v: floats(n).map(Math.abs) }
    const s = { beta1: 0.9, beta2: 0.95, c1: 1 - 0.9 ** 7, c2: 1 - 0.95 ** 7, eps: 1e-8, lr: 3e-4, clip: 0.7, decay: 0.1 }
    const resident = Object.fromEntries(
      Object.entries(host).map(([k, v]) => {
        const d = a.deviceArrayNew(n, "float32")
        a.deviceArrayCopyIn(d, v)
        return [k, d]
      }),
    )
    a.adamw(resident.w, resident.g, resident.m, resident.v, s.beta1, s.beta2, s.c1, s.c2, s.eps, s.lr, s.clip, s.decay)
    CpuOptional.adamwKernel()(host.w, host.g, host.m, host.v, s)
    for (const k of ["w", "m", "v"]) {
      const got = new Float32Array(n)
      a.deviceArrayCopyOut(resident[k], got)
      assert(ulps(got, host[k]) === 0, `adamw on device arrays: ${k} differs`)
    }
    for (const [ea, n0, eb, n1, c] of [
      [1, 32000, 1, 4096, 1],
      [8, 1024, 1, 16, 128],
      [1, 3, 5, 7, 9],
    ]) {
      const x = floats(ea * n0 * eb * n1 * c)
      const [want, got] = [new Float32Array(x.length), new Float32Array(x.length)]
      let o = 0
      for (let i = 0; i < ea; i++)
        for (let j1 = 0; j1 < n1; j1++)
          for (let ib = 0; ib < eb; ib++) for (let j0 = 0; j0 < n0; j0++) for (let k = 0; k < c; k++) want[o++] = x[(((i * n0 + j0) * eb + ib) * n1 + j1) * c + k]
      a.swapDims(x, got, ea, n0, eb, n1, c)
      assert(ulps(got, want) === 0, `swapDims ${[ea, n0, eb, n1, c]}: differs`)
    }
    return { sumSquaresWorstRelative: worst.relative, adamw: "bit for bit", swapDims: "exact" }
  })
  check("scatterAddRows (the embedding's gradient): the CPU's bits onto out's values", () => {
    const loaded = CudaArrays.cudaArrays()
    assert(!("why" in loaded), loaded.why)
    for (const [n, targets, cols] of [
      [8192, 32000, 4096],
      [65536, 16, 1024],
      [0, 4, 4],
    ]) {
      const src = floats(n * cols)
      const index = Int32Array.from({ length: n }, (_, i) => (i * 7919) % targets)
      const want = floats(targets * cols)
      const got = Float32Array.from(want)
      Cpu.scatterAddRows(src, index, want, cols)
      loaded.addon.scatterAddRows(src, index, got, cols)
      assert(ulps(got, want) === 0, `${n} rows into ${targets}x${cols}: differs`)
    }
    return "bit for bit"
  })
  check("roundBf16 (a bf16 run's rounding) on a device array, in place: Bf16Round's bits", () => {
    const loaded = CudaArrays.cudaArrays()
    assert(!("why" in loaded), loaded.why)
    const n = 1 << 22
    const words = Uint32Array.from({ length: n }, (_, i) => (Math.imul(i, 2654435761) ^ (i << 7)) >>> 0)
    const x = new Float32Array(words.buffer)
    const want = new Float32Array(n)
    Bf16Round.roundInto(x, want, "typescript")
    const onDevice = loaded.addon.deviceArrayNew(n, "float32")
    loaded.addon.deviceArrayCopyIn(onDevice, x)
    loaded.addon.roundBf16(onDevice, onDevice)
    const got = new Float32Array(n)
    loaded.addon.deviceArrayCopyOut(onDevice, got)
    const a = new Uint32Array(got.buffer)
    const b = new Uint32Array(want.buffer)
    for (let i = 0; i < n; i++) assert(a[i] === b[i], `element ${i}: ${a[i].toString(16)} against ${b[i].toString(16)}`)
    return "bit for bit"
  })
  await checkAsync(
    "deviceArrayCopyOutAsync (a step's reads on the host): the values at the call, not a write queued after it; dst untouched until it resolves; many in flight",
    async () => {
      const { addon } = CudaArrays.cudaArrays()
      const rounds = []
      for (const n of [1, 1000, 1 << 20, 3 << 20]) {
        const x = floats(n)
        const array = addon.deviceArrayNew(n, "float32")
        addon.deviceArrayCopyIn(array, x)
        const got = new Float32Array(n).fill(-7)
        const t0 = performance.now()
        const arrived = addon.deviceArrayCopyOutAsync(array, got)
        const returnedMs = performance.now() - t0
        addon.deviceArrayZero(array)
        assert(got[0] === -7, `n ${n}: dst was written before the promise resolved`)
        await arrived
        assert(ulps(got, x) === 0, `n ${n}: the copy differs from the values at the call`)
        rounds.push({ n, returnedMs, arrivedMs: performance.now() - t0 })
      }
      const many = Array.from({ length: 64 }, (_, i) => {
        const x = floats(4096 + i)
        const array = addon.deviceArrayNew(x.length, "float32")
        addon.deviceArrayCopyIn(array, x)
        const got = new Float32Array(x.length)
        return { x, got, arrived: addon.deviceArrayCopyOutAsync(array, got) }
      })
      await Promise.all(many.map((m) => m.arrived))
      for (const [i, m] of many.entries()) assert(ulps(m.got, m.x) === 0, `copy ${i} of 64 in flight differs`)
      return { rounds }
    },
  )
  check("deviceArrayCopyRange (the device optimizer's gradient buckets): slices exact, ranges outside an array or overlapping refused", () => {
    const { addon } = CudaArrays.cudaArrays()
    const x = floats(1000)
    const [src, dst] = [addon.deviceArrayNew(1000, "float32"), addon.deviceArrayNew(700, "float32")]
    addon.deviceArrayCopyIn(src, x)
    addon.deviceArrayZero(dst)
    addon.deviceArrayCopyRange(dst, 100, src, 250, 600)
    const got = new Float32Array(700)
    addon.deviceArrayCopyOut(dst, got)
    const want = new Float32Array(700)
    want.set(x.subarray(250, 850), 100)
    assert(ulps(got, want) === 0, "the slice differs")
    const refused = (f) => {
      try {
        f()
        return false
      } catch (e) {
        return e instanceof RangeError
      }
    }
    assert(
      refused(() => addon.deviceArrayCopyRange(dst, 101, src, 250, 600)),
      "a range past dst's end was taken",
    )
    assert(
      refused(() => addon.deviceArrayCopyRange(src, 10, src, 0, 20)),
      "overlapping ranges of one array were taken",
    )
    return "exact"
  })
}
