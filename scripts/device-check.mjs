// device-check.mjs: issue 15's checks that run on the built project (dist/, build/Release) with
// no dev dependencies, so they travel to the GPU machine (scripts/device-check.sh). Writes one
// JSON report to the path given (default out/device-check.json), rewritten after every check
// (scripts/lib/device-report.mjs: `partial` until the end, so a run cut short still reports):
//   { date, node, build, device: { available, detail, devices }, doctor, partial, elapsedSeconds,
//     checks: [{ name, ok, skipped?, detail, seconds }], summary, notYet: [...] }
// A timed check's detail states its target and `meetsTarget`; `summary` lists the failed,
// skipped and target-missing checks. Exit 0 when every check that ran passed, 1 when one failed,
// 3 when nvidia-smi sees a GPU that CUDA does not (the whole run is then void). The budget
// (PLEAT_DEVICE_CHECK_SECONDS, default 400) skips, and records, the checks that would start
// after it.
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { kernelChecks } from "./device-check-kernels.mjs"
import { timedChecks } from "./device-check-timed.mjs"
import { trainChecks } from "./device-check-train.mjs"
import { againstTarget, deviceReport, floatsFrom, randomStream } from "./lib/device-report.mjs"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const target = process.argv[2] ?? path.join(root, "out", "device-check.json")
const Cuda = await import(path.join(root, "dist/native/Cuda.js"))
const Bf16Round = await import(path.join(root, "dist/tensor/kernels/Bf16Round.js"))

const assert = (condition, message) => {
  if (!condition) throw new Error(message)
}
// A fixed stream of pseudo-random floats (the same report for the same build).
const random = randomStream()
const floats = floatsFrom(random)

const status = Cuda.cudaStatus()
const doctor = spawnSync(process.execPath, [path.join(root, "dist/cli/main.js"), "doctor", "--json"], { encoding: "utf8", env: process.env })
const doctorJson = (() => {
  try {
    return JSON.parse(doctor.stdout)
  } catch {
    return { error: doctor.stderr.trim() || "no output" }
  }
})()
// How the addon was built (cuda/CMakeLists.txt writes it beside pleat_cuda.node).
const build = (() => {
  try {
    return JSON.parse(readFileSync(path.join(root, "build/Release/pleat_cuda.build.json"), "utf8"))
  } catch (error) {
    return { note: `no build/Release/pleat_cuda.build.json: ${error.message}` }
  }
})()
const gpuSeen = (() => {
  const smi = spawnSync("nvidia-smi", ["-L"], { encoding: "utf8" })
  return smi.status === 0 && /GPU \d/.test(smi.stdout ?? "")
})()
const report = deviceReport({
  target,
  budgetSeconds: Number(process.env.PLEAT_DEVICE_CHECK_SECONDS ?? 400),
  head: {
    date: new Date().toISOString(),
    node: process.version,
    build,
    device: status.available ? { available: true, devices: status.devices } : { available: false, detail: `${status.reason}: ${status.detail}`, nvidiaSmiSeesAGpu: gpuSeen },
    doctor: doctorJson,
  },
})
const { check, checkAsync, phase } = report
report.save(false)
if (!status.available) report.skipped("every device check", `CUDA has no device here (${status.reason}: ${status.detail})`)

// The kernels against their CPU twins: scripts/device-check-kernels.mjs.
if (status.available) await phase("kernel checks", () => kernelChecks({ root, check, checkAsync, assert, random, floats }))

if (status.available)
  await phase("device memory and cuBLAS checks", () => {
    const ops = Cuda.deviceOps()
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
          ...againstTarget(dense / grouped, 0.7),
          note: "grouped: one cuBLAS GEMM per expert on the stream (no grouped kernel yet)",
        }
      })
    }

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
  })

// The checks of what runs above the kernels (device-resident timings, the MoE layer against
// PyTorch, NCCL): scripts/device-check-timed.mjs.
await phase("timed checks", () => timedChecks({ root, status, doctorJson, check, checkAsync, assert, random, skipped: report.skipped, remainingMs: report.remainingMs }))

// Device tensors: device arrays, and pleat train on the GPU: scripts/device-check-train.mjs.
await phase("training checks", () => trainChecks({ root, status, check, assert, random, remainingMs: report.remainingMs }))

const missed = (c) => c.ok && typeof c.detail === "object" && c.detail !== null && (c.detail.meetsTarget === false || (c.detail.cases ?? []).some((k) => k?.meetsTarget === false))
report.set({
  summary: {
    passed: report.checks.filter((c) => c.ok).length,
    failed: report.checks.filter((c) => !c.ok && !c.skipped).map((c) => c.name),
    skipped: report.checks.filter((c) => c.skipped).map((c) => c.name),
    targetsMissed: report.checks.filter(missed).map((c) => c.name),
  },
  notYet: [
    "attention's flash kernels at speed: one thread a row in float32 on CUDA cores (no tensor cores, rows in local memory); timed here, not yet tuned",
    "the NCCL backend with several GPUs (one process per GPU under mpirun: the host stand-in runs its contract suite, device-resident collectives and p2p, and `pleat train --device sim` without a GPU); NCCL p2p links need two GPUs",
    "training on the GPU with nothing on the host but the router's top-k and the loss's row statistics: the router's softmax and top-k on the device",
  ],
})
report.save(true)
process.exitCode = !status.available && gpuSeen ? 3 : report.checks.every((c) => c.ok || c.skipped) ? 0 : 1
