// device-check-train.mjs: the GPU checks of device tensors, called by scripts/device-check.mjs
// with its report's helpers: the CUDA addon's device arrays (a round trip is exact, the sum of
// two equals the host's, the cuBLAS matmul on device arrays against the CPU matmul's contract on
// random shapes, transposes, batches and accumulation), and `pleat train --device cuda` on the
// default job in fp32 and bf16, and with GPT-OSS's activation and sinks, against the same job on the host (issue 15: training on the GPU learns). Each
// runs only where a device is.
import { spawnSync } from "node:child_process"
import path from "node:path"
import { floatsFrom } from "./lib/device-report.mjs"

export const trainChecks = async ({ root, status, check, assert, random, remainingMs }) => {
  if (!status.available) return
  const { cudaRuntime } = await import(path.join(root, "dist/tensor/device/CudaRuntime.js"))
  const Cpu = await import(path.join(root, "dist/native/Cpu.js"))
  const kernelsModule = await import(path.join(root, "dist/tensor/kernels/Kernels.js"))
  const Bf16Round = await import(path.join(root, "dist/tensor/kernels/Bf16Round.js"))
  const made = cudaRuntime(0)
  check("device arrays: the CUDA runtime starts (device arrays, cuBLAS)", () => {
    assert(made.runtime !== undefined, made.why)
    return { device: "cuda:0" }
  })
  if (made.runtime === undefined) return
  const rt = made.runtime
  // random() is uniform in [-1, 1); u() in [0, 1).
  const u = () => (random() + 1) / 2
  const fill = floatsFrom(random, 1)
  const back = (x) => {
    const host = new Float32Array(x.length)
    rt.download(x, host)
    return host
  }

  check("device arrays: upload then download is exact; add equals the host's sum bit for bit", () => {
    const a = fill(100_003)
    const b = fill(100_003)
    assert(
      back(rt.upload(a)).every((v, i) => Object.is(v, a[i])),
      "a round trip changed a value",
    )
    const out = rt.allocate("float32", a.length)
    rt.kernels.add(rt.upload(a), rt.upload(b), out)
    const sum = back(out)
    const wrong = sum.findIndex((v, i) => v !== Math.fround(a[i] + b[i]))
    assert(wrong < 0, `add: element ${wrong} is ${sum[wrong]}, the host's ${Math.fround(a[wrong] + b[wrong])}`)
    return { elements: a.length }
  })

  check("device arrays: matmul (cuBLAS, fp32) against the CPU matmul, random shapes, transposes, batches, accumulation (tolerance 1e-5 of the row's magnitude)", () => {
    const cases = []
    for (let c = 0; c < 40; c++) {
      const pick = (lo, hi) => lo + Math.floor(u() * (hi - lo + 1))
      const batch = pick(1, 3)
      const [m, n, k] = [pick(1, 300), pick(1, 300), pick(0, 300)]
      const transA = u() < 0.5
      const transB = u() < 0.5
      const sharedB = u() < 0.5
      const accumulate = u() < 0.3
      const strideA = m * k
      const strideB = sharedB ? 0 : k * n
      const a = fill(batch * m * k)
      const b = fill(sharedB ? k * n : batch * k * n)
      const out0 = fill(batch * m * n)
      const want = Float32Array.from(out0)
      Cpu.matmul({ a, b, out: want, batch, m, n, k, transA, transB, strideA, strideB, accumulate })
      const out = rt.upload(out0)
      rt.kernels.matmul({ a: rt.upload(a), b: rt.upload(b), out, batch, m, n, k, transA, transB, strideA, strideB, accumulate })
      const got = back(out)
      let worst = 0
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.sqrt(k) + Math.abs(want[i])))
      assert(worst <= 1e-5, `batch ${batch} m ${m} n ${n} k ${k} transA ${transA} transB ${transB} shared ${sharedB} accumulate ${accumulate}: error ${worst}`)
      cases.push(worst)
    }
    return { cases: cases.length, worst: Math.max(...cases) }
  })

  check(
    "device arrays: the grouped expert products (cuBLAS) against the CPU's groupedRows and groupedWeights, random groups (empty ones included), transposes, accumulation (tolerance 1e-5)",
    () => {
      const host = kernelsModule.native()
      assert(host !== undefined, "the CPU kernels are not loaded")
      let worst = 0
      for (let c = 0; c < 30; c++) {
        const pick = (lo, hi) => lo + Math.floor(u() * (hi - lo + 1))
        const groups = pick(1, 8)
        const rows = Int32Array.from({ length: groups }, () => (u() < 0.2 ? 0 : pick(1, 200)))
        const total = rows.reduce((p, q) => p + q, 0)
        const [k, n] = [pick(1, 256), pick(1, 256)]
        const transB = u() < 0.5
        const accumulate = u() < 0.3
        const a = fill(total * k)
        const b = fill(groups * k * n)
        const wantRows = new Float32Array(total * n)
        host.groupedRows(a, b, wantRows, rows, k, n, transB)
        const outRows = rt.allocate("float32", total * n)
        rt.kernels.groupedRows(rt.upload(a), rt.upload(b), outRows, rows, k, n, transB)
        const c2 = fill(total * n)
        const w0 = fill(groups * k * n)
        const wantW = Float32Array.from(w0)
        host.groupedWeights(a, c2, wantW, rows, k, n, accumulate)
        const outW = rt.upload(w0)
        rt.kernels.groupedWeights(rt.upload(a), rt.upload(c2), outW, rows, k, n, accumulate)
        for (const [got, want, inner] of [
          [back(outRows), wantRows, k],
          [back(outW), wantW, Math.max(...rows, 1)],
        ]) {
          for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.sqrt(inner) + Math.abs(want[i])))
        }
        assert(worst <= 1e-5, `groups [${rows.join(", ")}] k ${k} n ${n} transB ${transB} accumulate ${accumulate}: error ${worst}`)
      }
      return { cases: 30, worst }
    },
  )

  check(
    "device arrays: a bf16 run's products (cuBLAS bf16 GEMMs, operands rounded to bfloat16 on the device, fp32 sums) against the host's fp32 products of the bf16-rounded operands: batched matmul (a shared B too), groupedRows, groupedWeights with accumulation (tolerance 1e-5; an fp32 product of the unrounded operands is ~1e-3 off)",
    () => {
      const rounded = (x) => {
        const r = new Float32Array(x.length)
        Bf16Round.roundInto(x, r)
        return r
      }
      const host = kernelsModule.native()
      assert(host !== undefined, "the CPU kernels are not loaded")
      let worst = 0
      const compare = (got, want, inner, what) => {
        let err = 0
        for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]) / (Math.sqrt(inner) + Math.abs(want[i])))
        assert(err <= 1e-5, `${what}: error ${err}`)
        worst = Math.max(worst, err)
      }
      for (let c = 0; c < 30; c++) {
        const pick = (lo, hi) => lo + Math.floor(u() * (hi - lo + 1))
        const batch = pick(1, 3)
        const [m, n, k] = [pick(1, 300), pick(1, 300), pick(0, 300)]
        const [transA, transB, accumulate, sharedB] = [u() < 0.5, u() < 0.5, u() < 0.3, u() < 0.5]
        const [strideA, strideB] = [m * k, sharedB ? 0 : k * n]
        // Unrounded operands go up; the reference multiplies their bf16 roundings in fp32 (exact products).
        const [a, b, out0] = [fill(batch * m * k), fill(sharedB ? k * n : batch * k * n), fill(batch * m * n)]
        const want = Float32Array.from(out0)
        Cpu.matmul({ a: rounded(a), b: rounded(b), out: want, batch, m, n, k, transA, transB, strideA, strideB, accumulate })
        const out = rt.upload(out0)
        rt.kernels.bf16Products.matmul({ a: rt.upload(a), b: rt.upload(b), out, batch, m, n, k, transA, transB, strideA, strideB, accumulate })
        compare(back(out), want, k, `matmul batch ${batch} m ${m} n ${n} k ${k} transA ${transA} transB ${transB} shared ${sharedB} accumulate ${accumulate}`)
        const groups = pick(1, 6)
        const kg = pick(1, 256)
        const rows = Int32Array.from({ length: groups }, () => (u() < 0.2 ? 0 : pick(1, 150)))
        const total = rows.reduce((p, q) => p + q, 0)
        const [x, w, g] = [fill(total * kg), fill(groups * kg * n), fill(total * n)]
        const wantRows = new Float32Array(total * n)
        host.groupedRows(rounded(x), rounded(w), wantRows, rows, kg, n, transB)
        const outRows = rt.allocate("float32", total * n)
        rt.kernels.bf16Products.groupedRows(rt.upload(x), rt.upload(w), outRows, rows, kg, n, transB)
        compare(back(outRows), wantRows, kg, `groupedRows groups [${rows.join(", ")}] k ${kg} n ${n} transB ${transB}`)
        const w0 = fill(groups * kg * n)
        const wantW = Float32Array.from(w0)
        host.groupedWeights(rounded(x), rounded(g), wantW, rows, kg, n, accumulate)
        const outW = rt.upload(w0)
        rt.kernels.bf16Products.groupedWeights(rt.upload(x), rt.upload(g), outW, rows, kg, n, accumulate)
        compare(back(outW), wantW, Math.max(...rows, 1), `groupedWeights groups [${rows.join(", ")}] k ${kg} n ${n} accumulate ${accumulate}`)
      }
      return { cases: 30, worst }
    },
  )

  // `pleat train` on the default job (8 ranks on this one GPU) in fp32 and bf16 against the host.
  const train = (device, precision, extra = []) => {
    const r = spawnSync(
      process.execPath,
      [path.join(root, "dist/cli/main.js"), "train", "--steps", "30", "--device", device, "--precision", precision, "--log", "json", ...extra],
      {
        encoding: "utf8",
        timeout: Math.min(150_000, remainingMs()),
      },
    )
    const steps = (r.stdout ?? "")
      .split("\n")
      .filter((l) => l.includes('"msg":"step"'))
      .map((l) => JSON.parse(l))
    assert(
      r.status === 0 && steps.length === 30,
      `--device ${device} --precision ${precision}: exit ${r.status} ${r.signal ?? ""}, ${steps.length} steps: ${(r.stderr ?? "").slice(-600)}`,
    )
    return steps
  }
  const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]
  // The host's runs, once per precision and model (the host has no --probs-at difference to show).
  const hostRuns = new Map()
  const onHost = (precision, model) => {
    const key = [precision, ...model].join(" ")
    return hostRuns.get(key) ?? hostRuns.set(key, train("cpu", precision, model)).get(key)
  }
  // GPT-OSS's experts' activation and learnable sinks (kernels/gated_sinks.cu on the device).
  const gptOss = ["--quick-geglu", "--glu-linear-offset", "1", "--activation-func-clamp-value", "7", "--softmax-type", "learnable"]
  // The third case weights each expert's output by its prob in the combine (--probs-at combine:
  // the weighted sum on the device) against the host's default placement: the same model.
  for (const [precision, tolerance, extra, model] of [
    ["fp32", 1e-4, [], []],
    ["bf16", 2e-2, [], []],
    ["fp32", 1e-4, ["--probs-at", "combine"], []],
    ["fp32", 1e-4, gptOss, gptOss],
  ])
    check(
      `pleat train --device cuda --precision ${precision} ${extra.join(" ")} (default job, 30 steps) learns, and its first step's loss is the host's (${tolerance} relative)`,
      () => {
        const host = onHost(precision, model)
        const gpu = train("cuda", precision, extra)
        const first = Math.abs(gpu[0].loss - host[0].loss) / host[0].loss
        const last = gpu[gpu.length - 1].loss
        assert(first <= tolerance, `step 1: ${gpu[0].loss} on the GPU, ${host[0].loss} on the host`)
        assert(last < 0.5 * gpu[0].loss, `the loss went from ${gpu[0].loss} to ${last}`)
        return {
          losses: { gpu: gpu.map((s) => s.loss), host: host.map((s) => s.loss) },
          firstStepRelative: first,
          tokensPerSec: { gpu: median(gpu.slice(3).map((s) => s.tokensPerSec)), host: median(host.slice(3).map((s) => s.tokensPerSec)) },
          hostDeviceBytesPerStep: median(gpu.slice(3).map((s) => (s.hostDeviceBytes ?? []).reduce((p, q) => p + q, 0))),
          // Copies that blocked the JS thread (0 on sim; on CUDA also the ops that fall back to host kernels).
          hostWaitsPerStep: median(gpu.slice(3).map((s) => (s.hostWaits ?? []).reduce((p, q) => p + q, 0))),
          deviceMemoryAtEnd: gpu[gpu.length - 1].deviceMemory ?? null,
          note: "weights, gradients and AdamW moments stay on the GPU (the device optimizer; bf16 copies rounded there); products, expert GEMMs, attention, RoPE, dispatch, RMSNorm, SwiGLU, sums and the optimizer on the GPU; the router's top-k and the loss's row statistics cross to the host, without blocking the JS thread",
        }
      },
    )
}
