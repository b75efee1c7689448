// device-check.mjs: issue 15's checks that run on the built project (dist/, build/Release) with
// no dev dependencies, so they travel to the GPU machine (scripts/device-check.sh). Writes one
// JSON report to the path given (default out/device-check.json):
//   { date, node, device: { available, detail, devices }, doctor, checks: [{ name, ok, detail,
//     seconds }], notYet: [...] }
// Exit 0 when every check that ran passed (none run without a device), 1 when one failed.
import { spawnSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const target = process.argv[2] ?? path.join(root, "out", "device-check.json")
const Cuda = await import(path.join(root, "dist/native/Cuda.js"))
const CudaTiming = await import(path.join(root, "dist/native/CudaTiming.js"))
const Cpu = await import(path.join(root, "dist/native/Cpu.js"))
const CpuOptional = await import(path.join(root, "dist/native/CpuOptional.js"))
const CpuDispatch = await import(path.join(root, "dist/native/CpuDispatch.js"))
const CpuElementwise = await import(path.join(root, "dist/native/CpuElementwise.js"))
const CpuCrossEntropy = await import(path.join(root, "dist/native/CpuCrossEntropy.js"))
const Router = await import(path.join(root, "dist/moe/Router.js"))
const Tensor = await import(path.join(root, "dist/tensor/Tensor.js"))
const Bf16Round = await import(path.join(root, "dist/tensor/kernels/Bf16Round.js"))

const checks = []
const check = (name, run) => {
  const started = performance.now()
  try {
    const detail = run()
    checks.push({ name, ok: true, detail, seconds: (performance.now() - started) / 1000 })
  } catch (error) {
    checks.push({ name, ok: false, detail: String(error?.stack ?? error), seconds: (performance.now() - started) / 1000 })
  }
}
const checkAsync = async (name, run) => {
  const started = performance.now()
  try {
    const detail = await run()
    checks.push({ name, ok: true, detail, seconds: (performance.now() - started) / 1000 })
  } catch (error) {
    checks.push({ name, ok: false, detail: String(error?.stack ?? error), seconds: (performance.now() - started) / 1000 })
  }
}
const assert = (condition, message) => {
  if (!condition) throw new Error(message)
}

// A fixed stream of pseudo-random floats (the same report for the same build).
let state = 12345
const random = () => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1

const status = Cuda.cudaStatus()
const doctor = spawnSync(process.execPath, [path.join(root, "dist/cli/main.js"), "doctor", "--json"], { encoding: "utf8", env: process.env })
const doctorJson = (() => {
  try {
    return JSON.parse(doctor.stdout)
  } catch {
    return { error: doctor.stderr.trim() || "no output" }
  }
})()

if (status.available) {
  check("axpy: the device equals the CPU's fused multiply-add bit for bit", () => {
    const sizes = [1, 7, 1000, 65536 * 256 + 12345]
    for (const n of sizes) {
      const x = Float32Array.from({ length: n }, random)
      const y = Float32Array.from({ length: n }, random)
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
  const floats = (n) => Float32Array.from({ length: n }, () => random() * 4)
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
    ]) {
      const logits = floats(tokens * experts)
      const bias = mode === "sigmoid" ? Float64Array.from({ length: experts }, () => random() / 10) : undefined
      const options = {
        topk,
        scoreFunction: mode === "sigmoid" ? "sigmoid" : "softmax",
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
  check("attention forward and backward (GQA, causal): within one ulp of the CPU's float64 reference", () => {
    const worst = { out: 0, dq: 0, dk: 0, dv: 0 }
    for (const [b, s, hq, hkv, d] of [
      [1, 1, 1, 1, 1],
      [2, 96, 8, 2, 64],
      [1, 256, 4, 4, 128],
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
      worst.out = Math.max(worst.out, ulps(gout, out))
      worst.dq = Math.max(worst.dq, ulps(got.gradQ, want.gradQ))
      worst.dk = Math.max(worst.dk, ulps(got.gradK, want.gradK))
      worst.dv = Math.max(worst.dv, ulps(got.gradV, want.gradV))
    }
    assert(Math.max(worst.out, worst.dq, worst.dk, worst.dv) <= 1, JSON.stringify(worst))
    return { worstUlps: worst }
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

  const memory = Cuda.deviceMemory()
  check("device memory: bytes copied in come back out, through the caching allocator", () => {
    const sizes = [1, 511, 512, 4096, 1 << 20, (1 << 20) + 1, 3 << 20, 64 << 20]
    for (const n of sizes) {
      const host = new Uint8Array(n).map((_, i) => (i * 7 + n) & 255)
      const at = memory.allocate(n, 0)
      assert(at !== null, `allocate(${n}) gave null`)
      memory.copyIn(at, host, 0)
      const back = new Uint8Array(n)
      memory.copyOut(at, back, 0)
      assert(
        back.every((v, i) => v === host[i]),
        `size ${n}: the bytes differ`,
      )
      assert(memory.free(at), `free of ${at} refused`)
    }
    return { sizes, stats: memory.stats() }
  })

  check("device memory: a freed block serves the next request of its size without cudaMalloc", () => {
    const times = []
    for (const n of [1000, 2 << 20, 48 << 20]) {
      memory.free(memory.allocate(n, 0))
      const before = memory.stats().deviceAllocations
      const started = performance.now()
      for (let k = 0; k < 1000; k++) memory.free(memory.allocate(n, 0))
      times.push({ bytes: n, microsecondsPerPair: ((performance.now() - started) * 1000) / 1000 })
      assert(memory.stats().deviceAllocations === before, `size ${n}: cudaMalloc was called again`)
    }
    return { times }
  })

  check("device memory: a block used on another stream is reused only after that stream's work", () => {
    const at = memory.allocate(4096, 0)
    memory.copyIn(at, new Uint8Array(4096).fill(1), 0)
    memory.recordStream(at, 1)
    memory.free(at)
    const next = memory.allocate(4096, 0)
    const stats = memory.stats()
    memory.free(next)
    return { pendingAfterFree: stats.pendingBlocks, reusedAtOnce: next === at }
  })

  // cuBLAS: the library pleat doctor found (or PLEAT_CUBLAS_LIB), loaded by dlopen.
  const cublasPath = process.env.PLEAT_CUBLAS_LIB ?? doctorJson.cublas?.path ?? "libcublas.so.13"
  const cublas = Cuda.loadCublas(cublasPath)
  check(`cuBLAS loads (${cublasPath})`, () => {
    assert(cublas.loaded, cublas.error)
    return cublas
  })
  if (cublas.loaded) {
    const bf16 = (x) => Float32Array.from(x, (v) => Bf16Round.roundValue(v))
    const product = (a, b, m, n, k) => {
      const out = new Float64Array(m * n)
      const scale = new Float64Array(m * n)
      for (let i = 0; i < m; i++)
        for (let p = 0; p < k; p++)
          for (let j = 0; j < n; j++) {
            const t = a[i * k + p] * b[p * n + j]
            out[i * n + j] += t
            scale[i * n + j] += Math.abs(t)
          }
      return { out, scale }
    }
    check("gemm (cuBLAS): the float64 product within fp32 rounding (fp32 and bf16 inputs)", () => {
      const cases = []
      for (const [m, n, k] of [
        [1, 1, 1],
        [17, 33, 65],
        [128, 96, 300],
      ])
        for (const half of [false, true]) {
          const a = floats(m * k)
          const b = floats(k * n)
          const out = new Float32Array(m * n)
          ops.gemm(a, b, out, m, n, k, half)
          const ref = half ? product(bf16(a), bf16(b), m, n, k) : product(a, b, m, n, k)
          let worst = 0
          out.forEach((v, i) => {
            worst = Math.max(worst, Math.abs(v - ref.out[i]) / (ref.scale[i] + 1e-30))
          })
          assert(worst <= 2 ** -20, `${m}x${n}x${k} ${half ? "bf16" : "fp32"}: error ${worst} of the products' scale`)
          cases.push({ m, n, k, bf16: half, worstRelativeToScale: worst })
        }
      return { cases }
    })
    check("grouped expert GEMM against dense cuBLAS bf16 GEMM of the same FLOPs (T 8192, H 4096, F 14336, E 8, top-2)", () => {
      const [tokens, hidden, ffn, experts] = [8192, 4096, 14336, 8]
      const rows = tokens * 2
      const counts = Int32Array.from({ length: experts }, (_, e) => rows / experts + (e % 2 === 0 ? 256 : -256))
      const a = floats(rows * hidden)
      const b = floats(experts * hidden * ffn)
      const out = new Float32Array(rows * ffn)
      const flops = 2 * rows * hidden * ffn
      ops.groupedGemm(a, b, out, counts, hidden, ffn, true)
      const grouped = Math.min(...[0, 1, 2].map(() => ops.groupedGemm(a, b, out, counts, hidden, ffn, true)))
      const dense = Math.min(...[0, 1, 2].map(() => ops.gemm(a, b.subarray(0, hidden * ffn), out, rows, ffn, hidden, true)))
      return {
        groupedTflops: flops / (grouped / 1000) / 1e12,
        denseTflops: flops / (dense / 1000) / 1e12,
        ratio: dense / grouped,
        target: 0.7,
        note: "grouped: one cuBLAS GEMM per expert on the stream (no grouped kernel yet)",
      }
    })
  }

  check("permute + unpermute on device-resident data against a device copy of the same bytes (T 8192, H 4096, top-2 and top-8, E 8 and 64)", () => {
    const cases = []
    for (const [experts, topk] of [
      [8, 2],
      [64, 8],
    ]) {
      const t = CudaTiming.timings().permute({ tokens: 8192, hidden: 4096, experts, topk }, 20)
      // As the CPU bench counts: each pass reads and writes `bytes`, and so does the copy.
      const pairGBs = (4 * t.bytes) / ((t.permuteMs + t.unpermuteMs) / 1000) / 1e9
      const copyGBs = (2 * t.bytes) / (t.copyMs / 1000) / 1e9
      cases.push({ experts, topk, ...t, pairGBs, copyGBs, ratio: pairGBs / copyGBs, target: 0.6 })
    }
    return { cases }
  })

  check("copy bandwidth host <-> device, 256 MiB (pageable host memory)", () => {
    const n = 256 << 20
    const host = new Uint8Array(n).fill(3)
    const at = memory.allocate(n, 0)
    const t0 = performance.now()
    memory.copyIn(at, host, 0)
    const t1 = performance.now()
    memory.copyOut(at, host, 0)
    const t2 = performance.now()
    memory.free(at)
    return { hostToDeviceGBs: n / ((t1 - t0) / 1000) / 1e9, deviceToHostGBs: n / ((t2 - t1) / 1000) / 1e9 }
  })
}

// One MoE layer forward and backward, pleat against PyTorch eager on this GPU (issue 15: at least
// as fast). Each side in a child process: pleat's (scripts/device-moe-layer.mjs, device-resident
// tensors, cuBLAS bf16 GEMMs) and PyTorch's (bench/pytorch/moe_layer_gpu.py, HF Mixtral's
// routing loop), the same layer and shape; the python is $PLEAT_PYTHON or /opt/torch/.venv's.
if (status.available) {
  check("one MoE layer forward + backward (T 8192, H 4096, F 14336, E 8, top-2): pleat against PyTorch eager", () => {
    const shape = { tokens: 8192, hidden: 4096, ffn: 14336, experts: 8, topk: 2 }
    const cublasPath = process.env.PLEAT_CUBLAS_LIB ?? doctorJson.cublas?.path ?? "libcublas.so.13"
    const json = (run, who) => {
      const line = (run.stdout ?? "").trim().split("\n").pop() ?? ""
      try {
        return JSON.parse(line)
      } catch {
        throw new Error(`${who}: exit ${run.status} ${run.signal ?? ""}, no JSON: ${(run.stderr ?? "").slice(-600)}`)
      }
    }
    const ours = json(
      spawnSync(process.execPath, [path.join(root, "scripts/device-moe-layer.mjs"), cublasPath, JSON.stringify(shape), "5"], { encoding: "utf8", timeout: 120_000 }),
      "pleat",
    )
    assert(ours.error === undefined, `pleat: ${ours.error}`)
    const python = process.env.PLEAT_PYTHON ?? "/opt/torch/.venv/bin/python"
    const args = [path.join(root, "bench/pytorch/moe_layer_gpu.py"), "--device", "cuda", "--tokens", String(shape.tokens), "--hidden", String(shape.hidden)]
    args.push("--ffn", String(shape.ffn), "--experts", String(shape.experts), "--topk", String(shape.topk), "--warmup", "2", "--reps", "5")
    const theirs = json(spawnSync(python, args, { encoding: "utf8", timeout: 180_000 }), "PyTorch")
    assert(theirs.error === undefined, `PyTorch: ${theirs.error}`)
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
    const pleatMs = median(ours.forwardMs.map((f, i) => f + ours.backwardMs[i]))
    return {
      pleat: { ...ours, medianStepMs: pleatMs, tflops: theirs.flopsPerStep / (pleatMs / 1000) / 1e12 },
      pytorch: theirs,
      speedup: theirs.medianMs / pleatMs,
      target: 1,
      note: "pleat does not run the router's backward (under 0.01% of the FLOPs); both sides' TFLOP/s count the model's FLOPs",
    }
  })
}

// The NCCL backend's native side on one GPU: real NCCL loaded as the backend loads it, a
// communicator of one member, and every op's plan (NcclPlan) run through the staging executor,
// each result equal to Collective.outputFor's (one member: the same bits).
if (status.available && process.env.PLEAT_NCCL_LIB !== undefined) {
  const Nccl = await import(path.join(root, "dist/native/Nccl.js"))
  const NcclPlan = await import(path.join(root, "dist/comm/nccl/NcclPlan.js"))
  const Collective = await import(path.join(root, "dist/comm/Collective.js"))
  await checkAsync("NCCL: the contract subset one GPU allows (a communicator of one, every op's plan staged through device memory)", async () => {
    const nccl = Nccl.native()
    const loaded = nccl.load(process.env.PLEAT_NCCL_LIB)
    assert(!loaded.hostMemory, `${loaded.path} is the host stand-in`)
    nccl.selectDevice(0)
    const handle = await nccl.commInit(nccl.uniqueId(), 1, 0, 0)
    const cases = []
    const signatures = [
      { op: "allReduce", shape: [37, 5], reduce: "sum" },
      { op: "allReduce", shape: [11], reduce: "max" },
      { op: "allGather", shape: [9, 3] },
      { op: "allGatherV", shape: [4, 6] },
      { op: "reduceScatter", shape: [8, 2], reduce: "sum" },
      { op: "reduceScatterV", shape: [5, 2], reduce: "sum", counts: [5] },
      { op: "broadcast", shape: [13], root: 0 },
      { op: "allToAllV", shape: [7, 4], sendSplits: [7] },
    ]
    for (const dtype of ["float32", "float64"]) {
      for (const sig of signatures) {
        const data = (dtype === "float32" ? Float32Array : Float64Array).from({ length: sig.shape.reduce((a, b) => a * b, 1) }, random)
        const signature = { ...sig, rank: 0, dtype }
        const plan = NcclPlan.planFor([signature], 0)
        const recv = new (dtype === "float32" ? Float32Array : Float64Array)(plan.recvLength)
        await nccl.run(handle, 1, NcclPlan.encode(plan.calls), data, recv)
        const want = Collective.outputFor([Collective.contribution(signature, data)], 0).data
        assert(recv.length === want.length && recv.every((v, i) => Object.is(v, want[i])), `${sig.op} ${dtype}: differs from Collective.outputFor`)
        cases.push(`${sig.op} ${dtype}`)
      }
    }
    const asyncError = nccl.asyncError(handle)
    nccl.free(handle, false)
    return { nccl: loaded.path, version: loaded.version, cases, asyncError }
  })
}

const report = {
  date: new Date().toISOString(),
  node: process.version,
  device: status.available ? { available: true, devices: status.devices } : { available: false, detail: `${status.reason}: ${status.detail}` },
  doctor: doctorJson,
  checks,
  notYet: [
    "CUDA kernels beside their CPU references (axpy, gatherRows, rmsnormRows and swiglu and their backwards, combineRows and its backward combineBackward, RoPE, the cross-entropy row kernels, the router, attention and its backward (correct, element by element: not flash-tiled), permute with the prob column, adamw and the cuBLAS gemm / groupedGemm exist): flash-tiled attention",
    "the NCCL backend with several GPUs (one process per GPU under mpirun: the host stand-in runs its contract suite without a GPU)",
    "training on the GPU: device tensors in the tensor ops and `pleat train` on one GPU (the layer above is a fixed composition of the device kernels, not pleat's autograd)",
  ],
}
mkdirSync(path.dirname(target), { recursive: true })
writeFileSync(target, `${JSON.stringify(report, null, 2)}\n`)
process.exitCode = checks.every((c) => c.ok) ? 0 : 1
