// device-check-kernels.mjs: the CUDA kernels against their CPU twins on the GPU (axpy, the
// MoE dispatch kernels, the row kernels and their backwards, the cross-entropy row kernels, the
// router, RoPE, AdamW, the element-wise ops; attention and the kernels of device arrays in
// device-check-device-arrays.mjs, the gated activation and the attention sinks in
// device-check-gated-sinks.mjs), called by scripts/device-check.mjs with its report's helpers
// where a device is. properties/native/CudaOps.prop.ts has the same checks over random shapes;
// the GPU machine has no vitest.
import path from "node:path"
import { deviceArrayChecks } from "./device-check-device-arrays.mjs"
import { gatedSinksChecks } from "./device-check-gated-sinks.mjs"

export const kernelChecks = async ({ root, check, checkAsync, assert, random, floats }) => {
  const Cuda = await import(path.join(root, "dist/native/Cuda.js"))
  const CudaArrays = await import(path.join(root, "dist/native/CudaArrays.js"))
  const Cpu = await import(path.join(root, "dist/native/Cpu.js"))
  const CpuOptional = await import(path.join(root, "dist/native/CpuOptional.js"))
  const CpuDispatch = await import(path.join(root, "dist/native/CpuDispatch.js"))
  const CpuElementwise = await import(path.join(root, "dist/native/CpuElementwise.js"))
  const CpuCrossEntropy = await import(path.join(root, "dist/native/CpuCrossEntropy.js"))
  const Router = await import(path.join(root, "dist/moe/Router.js"))
  const Tensor = await import(path.join(root, "dist/tensor/Tensor.js"))
  check("axpy: the device equals the CPU's fused multiply-add bit for bit", () => {
    const sizes = [1, 7, 1000, 65536 * 256 + 12345]
    for (const n of sizes) {
      const [x, y] = [floats(n).map((v) => v / 4), floats(n).map((v) => v / 4)]
      const cpu = Float32Array.from(y)
      Cpu.axpy(0.75, x, cpu)
      Cuda.axpy(0.75, x, y)
      let differ = 0
      for (let i = 0; i < n; i++) if (!Object.is(y[i], cpu[i])) differ++
      assert(differ === 0, `n ${n}: ${differ} elements differ from the CPU`)
    }
    return { sizes }
  })

  // The first CUDA kernels against their CPU twins (properties/native/CudaOps.prop.ts has the
  // same checks over random shapes; this machine has no vitest).
  const ops = Cuda.deviceOps()
  const ulps = (a, b) => {
    const ia = new Int32Array(a.buffer, a.byteOffset, a.length)
    const ib = new Int32Array(b.buffer, b.byteOffset, b.length)
    let worst = 0
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(ia[i] - ib[i]))
    return worst
  }
  check("gatherRows: equal to the CPU's", () => {
    for (const [rows, cols] of [
      [1, 1],
      [300, 1024],
      [4096, 4096],
    ]) {
      const src = floats(rows * cols)
      const index = Int32Array.from({ length: rows * 2 }, (_, i) => (i * 7919) % rows)
      const [cpu, gpu] = [new Float32Array(index.length * cols), new Float32Array(index.length * cols)]
      Cpu.gatherRows(src, index, cpu, cols)
      ops.gatherRows(src, index, gpu, cols)
      assert(ulps(gpu, cpu) === 0, `${rows}x${cols}: differs`)
    }
    return "exact"
  })
  check("permuteRows (the MoE permute with its prob column and probsOut): the CPU kernel's bits", () => {
    const kernels = CpuDispatch.dispatchKernels()
    for (const [tokens, cols, n, experts] of [
      [1, 1, 1, 1],
      [4096, 4096, 8192, 8],
      [2048, 1024, 16384, 64],
    ]) {
      const src = floats(tokens * cols)
      const probs = floats(tokens * experts)
      const index = Int32Array.from({ length: n }, (_, i) => (i * 7919) % tokens)
      const expert = Int32Array.from({ length: n }, (_, i) => (i * 31) % experts)
      const [want, wantProbs, got, gotProbs] = [new Float32Array(n * (cols + 1)), new Float32Array(n), new Float32Array(n * (cols + 1)), new Float32Array(n)]
      kernels.permuteRows(src, cols, index, want, cols + 1, probs, expert, experts, wantProbs)
      ops.permuteRows(src, cols, index, got, cols + 1, { probs, experts: expert, numExperts: experts, probsOut: gotProbs })
      assert(ulps(got, want) === 0 && ulps(gotProbs, wantProbs) === 0, `${tokens} tokens x ${cols}, ${n} rows: differs`)
    }
    return "bit for bit"
  })
  check("rmsnormRows: within one ulp of the CPU's scalar kernel", () => {
    let worst = 0
    for (const [rows, cols] of [
      [1, 1],
      [7, 1000],
      [1024, 4096],
    ]) {
      const x = floats(rows * cols)
      const w = floats(cols)
      const [cpu, gpu] = [new Float32Array(rows * cols), new Float32Array(rows * cols)]
      // The scalar kernel multiplies in float64 and rounds once, as the device does.
      const isa = Cpu.activeIsa()
      Cpu.setIsa("scalar")
      Cpu.rmsnormRows(x, w, cpu, new Float64Array(rows), rows, cols, 1e-6)
      Cpu.setIsa(isa)
      ops.rmsnormRows(x, w, gpu, undefined, rows, cols, 1e-6)
      worst = Math.max(worst, ulps(gpu, cpu))
    }
    assert(worst <= 1, `${worst} ulps`)
    return { worstUlps: worst }
  })
  check("swiglu: within one ulp of the CPU's scalar kernel", () => {
    const n = 1 << 22
    const [gate, up] = [floats(n), floats(n)]
    const [cpu, gpu] = [new Float32Array(n), new Float32Array(n)]
    // The scalar kernel rounds once from float64, as the device does (the vector paths round
    // each float32 step and sit a few ulp away).
    const isa = Cpu.activeIsa()
    Cpu.setIsa("scalar")
    Cpu.swiglu(gate, up, cpu)
    Cpu.setIsa(isa)
    ops.swiglu(gate, up, gpu)
    const worst = ulps(gpu, cpu)
    assert(worst <= 1, `${worst} ulps`)
    return { worstUlps: worst }
  })
  check("combineRows (MoE unpermute, top-2 and top-8, weighted): the CPU kernel's bits", () => {
    for (const [tokens, k, cols] of [
      [16384, 2, 1024],
      [4096, 8, 4096],
    ]) {
      const n = tokens * k
      const index = Int32Array.from({ length: n }, (_, j) => (j * 7919) % tokens)
      const rows = floats(n * cols)
      const weights = floats(n)
      const [want, got] = [new Float32Array(tokens * cols), new Float32Array(tokens * cols)]
      CpuDispatch.dispatchKernels().combineRows(rows, cols, index, weights, null, tokens, cols, want)
      ops.combineRows(rows, cols, index, weights, tokens, cols, got)
      assert(ulps(got, want) === 0, `T ${tokens} k ${k} H ${cols}: differs`)
    }
    return "bit for bit"
  })
  check("combineBackward (the MoE unpermute's backward, gradRows and gradWeights, each alone): the CPU kernel's bits", () => {
    const kernels = CpuDispatch.dispatchKernels()
    const shapes = [
      [1, 1, 1, "both"],
      [2048, 2, 1, "both"],
      [300, 3, 70, "rows"],
      [300, 3, 70, "weights"],
      [16384, 2, 1024, "both"],
      [4096, 8, 2048, "both"],
    ]
    for (const [tokens, k, cols, which] of shapes) {
      const n = tokens * k
      const index = Int32Array.from({ length: n }, (_, j) => (j * 7919) % tokens)
      const [g, rows, weights] = [floats(tokens * cols), floats(n * cols), floats(n)]
      const outputs = () => [which !== "weights" ? new Float32Array(n * cols) : null, which !== "rows" ? new Float32Array(n) : null]
      const [want, got] = [outputs(), outputs()]
      kernels.combineBackward(g, index, cols, weights, rows, want[0], want[1])
      ops.combineBackward(g, index, cols, weights, rows, got[0], got[1])
      for (let i = 0; i < 2; i++)
        assert(want[i] === null || ulps(got[i], want[i]) === 0, `T ${tokens} k ${k} H ${cols} (${which}): ${i === 0 ? "gradRows" : "gradWeights"} differs`)
    }
    return { shapes, result: "bit for bit" }
  })
  check("swigluBackward: within one ulp of the CPU's", () => {
    const n = 1 << 22
    const [gate, up, grad] = [floats(n), floats(n), floats(n)]
    const cpu = [new Float32Array(n), new Float32Array(n)]
    const gpu = [new Float32Array(n), new Float32Array(n)]
    CpuOptional.swigluBackwardKernel()(gate, up, grad, cpu[0], cpu[1])
    ops.swigluBackward(gate, up, grad, gpu[0], gpu[1])
    const worst = Math.max(ulps(gpu[0], cpu[0]), ulps(gpu[1], cpu[1]))
    assert(worst <= 1, `${worst} ulps`)
    return { worstUlps: worst }
  })
  check("rmsnormBackward: the CPU kernel's bits (dx and dw)", () => {
    const backward = CpuOptional.rmsnormBackwardKernel()
    for (const [rows, cols] of [
      [1, 1],
      [7, 1000],
      [1024, 4096],
    ]) {
      const [x, w, g] = [floats(rows * cols), floats(cols), floats(rows * cols)]
      const rstd = Float64Array.from({ length: rows }, () => 1 / (1 + Math.abs(random())))
      const cpu = [new Float32Array(rows * cols), new Float64Array(cols)]
      const gpu = [new Float32Array(rows * cols), new Float64Array(cols)]
      backward(x, w, g, rstd, rows, cols, cpu[0], cpu[1])
      ops.rmsnormBackward(x, w, g, rstd, rows, cols, gpu[0], gpu[1])
      assert(ulps(gpu[0], cpu[0]) === 0, `${rows}x${cols}: dx differs`)
      assert(
        gpu[1].every((v, j) => Object.is(v, cpu[1][j])),
        `${rows}x${cols}: dw differs`,
      )
    }
    return "bit for bit"
  })
  check("cross-entropy row kernels: maxima exact, sums within 1e-14, gradients within one ulp of the CPU's", () => {
    const cpu = CpuCrossEntropy.crossEntropyKernels()
    let worst = 0
    for (const [rows, cols] of [
      [1, 1],
      [64, 32000],
      [512, 151936],
    ]) {
      const x = floats(rows * cols).map((v) => v * 3)
      const targets = Int32Array.from({ length: rows }, (_, r) => (r % 5 === 0 ? -1 : (r * 7919) % cols))
      const want = { max: new Float64Array(rows), sum: new Float64Array(rows), d: new Float32Array(rows * cols) }
      const got = { max: new Float64Array(rows), sum: new Float64Array(rows), d: new Float32Array(rows * cols) }
      cpu.rowMax(x, rows, cols, want.max)
      ops.crossEntropy.rowMax(x, rows, cols, got.max)
      assert(
        got.max.every((v, r) => Object.is(v, want.max[r])),
        `${rows}x${cols}: maxima differ`,
      )
      cpu.rowSumExp(x, rows, cols, want.max, want.sum)
      ops.crossEntropy.rowSumExp(x, rows, cols, want.max, got.sum)
      assert(
        got.sum.every((v, r) => Math.abs(v - want.sum[r]) <= 1e-14 * want.sum[r]),
        `${rows}x${cols}: sums differ`,
      )
      const logSum = want.sum.map((v, r) => want.max[r] + Math.log(v))
      cpu.grad(x, rows, cols, logSum, targets, -1, 0, 1 / rows, want.d)
      ops.crossEntropy.grad(x, rows, cols, logSum, targets, -1, 0, 1 / rows, got.d)
      worst = Math.max(worst, ulps(got.d, want.d))
    }
    assert(worst <= 1, `gradient ${worst} ulps`)
    return { worstGradientUlps: worst }
  })
  check("router: Router.select's experts and probsFor's probs within one ulp (every mode, groups, bias, scaling)", () => {
    let worst = 0
    for (const [tokens, experts, topk, mode, numGroups, groupTopk] of [
      [4096, 8, 2, "post", undefined, undefined],
      [4096, 64, 8, "pre", undefined, undefined],
      [4096, 256, 8, "sigmoid", 8, 4],
      [1, 1, 1, "sigmoid", undefined, undefined],
      [4096, 64, 6, "sqrtsoftplus", 8, 4],
    ]) {
      const logits = floats(tokens * experts)
      const bias = mode === "sigmoid" || mode === "sqrtsoftplus" ? Float64Array.from({ length: experts }, () => random() / 10) : undefined
      const options = {
        topk,
        scoreFunction: mode === "pre" || mode === "post" ? "softmax" : mode,
        preSoftmax: mode === "pre",
        numGroups: numGroups ?? null,
        groupTopk: groupTopk ?? null,
        scalingFactor: 2.5,
        expertBias: bias ?? null,
      }
      const x = Tensor.fromStorage(logits, [tokens, experts])
      const want = Router.select(x, options)
      const wantProbs = Router.probsFor(x, want, options).data
      const [indices, probs] = [new Int32Array(tokens * topk), new Float32Array(tokens * experts)]
      ops.router(logits, { tokens, experts }, { topk, mode, numGroups, groupTopk, bias, scale: 2.5 }, indices, probs)
      assert(
        indices.every((v, i) => v === want[i]),
        `${tokens}x${experts} top-${topk} ${mode}: the experts differ`,
      )
      worst = Math.max(worst, ulps(probs, wantProbs))
    }
    assert(worst <= 1, `probs ${worst} ulps`)
    return { worstProbUlps: worst }
  })
  check("ropeRotate: the CPU kernel's bits (shared and per-token tables, both signs)", () => {
    const rope = CpuElementwise.ropeKernel()
    for (const [b, s, heads, d, perToken, sign] of [
      [1, 1, 1, 2, false, 1],
      [2, 1024, 16, 128, false, 1],
      [2, 512, 8, 64, true, -1],
    ]) {
      const tableRows = perToken ? b * s : s
      const x = floats(b * s * heads * d)
      const cos = Float64Array.from({ length: (tableRows * d) / 2 }, () => Math.cos(random() * 100))
      const sin = Float64Array.from({ length: (tableRows * d) / 2 }, () => Math.sin(random() * 100))
      const [want, got] = [new Float32Array(x.length), new Float32Array(x.length)]
      const dims = { b, s, heads, d, tableRows }
      rope(x, cos, sin, want, dims, sign)
      ops.ropeRotate(x, cos, sin, got, dims, sign)
      assert(ulps(got, want) === 0, `b ${b} s ${s} heads ${heads} d ${d}: differs`)
    }
    return "bit for bit"
  })
  check("adamw: the CPU kernel's bits", () => {
    const n = 1 << 22
    const s = { beta1: 0.9, beta2: 0.95, c1: 1 - 0.9 ** 3, c2: 1 - 0.95 ** 3, eps: 1e-8, lr: 3e-4, clip: 0.7, decay: 0.01 }
    const [w, g, m] = [floats(n), floats(n), floats(n)]
    const v = floats(n).map((x) => x * x)
    const cpu = [Float32Array.from(w), Float32Array.from(m), Float32Array.from(v)]
    const gpu = [Float32Array.from(w), Float32Array.from(m), Float32Array.from(v)]
    CpuOptional.adamwKernel()(cpu[0], g, cpu[1], cpu[2], s)
    ops.adamw(gpu[0], g, gpu[1], gpu[2], s)
    const worst = Math.max(...cpu.map((c, i) => ulps(gpu[i], c)))
    assert(worst === 0, `${worst} ulps`)
    return "bit for bit"
  })
  check("elementwise (binary ops with each broadcast, scale, row and suffix sums, float64 narrowing): the CPU kernels' bits", () => {
    const loaded = CudaArrays.cudaArrays()
    assert(!("why" in loaded), loaded.why)
    const a = loaded.addon
    const k = CpuElementwise.elementwiseKernels()
    for (const [rows, width] of [
      [1, 1],
      [300, 1000],
      [8192, 4096],
    ]) {
      const n = rows * width
      const x = floats(n)
      for (const [kind, bLength] of [
        [0, n],
        [1, width],
        [2, rows],
      ]) {
        const y = Float32Array.from(floats(bLength), (v) => v + 0.5)
        for (const op of [0, 1, 2, 3]) {
          const [want, got] = [new Float32Array(n), new Float32Array(n)]
          k.binary(op, kind, x, y, want, kind === 0 ? 0 : width)
          a.elementwiseBinary(op, kind, x, y, got, kind === 0 ? 0 : width)
          assert(ulps(got, want) === 0, `binary op ${op} kind ${kind} ${rows}x${width}: differs`)
        }
      }
      const sums = [
        ["scale", n, (out) => k.scale(x, 0.3, out), (out) => a.elementwiseScale(x, 0.3, out)],
        ["sumRows", rows, (out) => k.sumRows(x, out, width), (out) => a.sumRows(x, out, width)],
        ["sumSuffix", width, (out) => k.sumSuffix(x, out, width), (out) => a.sumSuffix(x, out, width)],
      ]
      for (const [name, length, cpu, gpu] of sums) {
        const [want, got] = [new Float32Array(length), new Float32Array(length)]
        cpu(want)
        gpu(got)
        assert(ulps(got, want) === 0, `${name} ${rows}x${width}: differs`)
      }
      const wide = Float64Array.from(x, (v, i) => v * (1 + 2 ** -30) + i * 2 ** -40)
      const narrowed = new Float32Array(n)
      a.narrowToFloat32(wide, narrowed)
      assert(ulps(narrowed, Float32Array.from(wide)) === 0, `narrowToFloat32 ${n}: differs`)
    }
    return "bit for bit"
  })
  // The gated activation and the attention sinks: device-check-gated-sinks.mjs.
  await gatedSinksChecks({ root, check, assert, ops, floats, ulps })
  // Attention and the kernels of device arrays: device-check-device-arrays.mjs.
  await deviceArrayChecks({ root, check, checkAsync, assert, ops, floats, ulps })
}
