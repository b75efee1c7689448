// device-check-timed.mjs: the GPU checks of what runs above single kernels, called by
// scripts/device-check.mjs with its report's helpers: the MoE permute and unpermute timed on
// device-resident data against a device copy, one MoE layer forward and backward against PyTorch
// eager on the same GPU (each side in a child process), and real NCCL through the NCCL backend's
// native side on one GPU. Each runs only where a device (and, for NCCL, PLEAT_NCCL_LIB) is; a
// timed row states its target and whether it meets it. PyTorch: $PLEAT_PYTHON, else python3.
import { spawnSync } from "node:child_process"
import path from "node:path"
import { againstTarget } from "./lib/device-report.mjs"

export const timedChecks = async ({ root, status, doctorJson, check, checkAsync, assert, random, skipped, remainingMs }) => {
  const CudaTiming = await import(path.join(root, "dist/native/CudaTiming.js"))
  if (status.available) {
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
        cases.push({ experts, topk, ...t, pairGBs, copyGBs, ...againstTarget(pairGBs / copyGBs, 0.6) })
      }
      return { cases }
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
        spawnSync(process.execPath, [path.join(root, "scripts/device-moe-layer.mjs"), cublasPath, JSON.stringify(shape), "5"], {
          encoding: "utf8",
          timeout: Math.min(120_000, remainingMs()),
        }),
        "pleat",
      )
      assert(ours.error === undefined, `pleat: ${ours.error}`)
      const python = process.env.PLEAT_PYTHON ?? "python3"
      const args = [path.join(root, "bench/pytorch/moe_layer_gpu.py"), "--device", "cuda", "--tokens", String(shape.tokens), "--hidden", String(shape.hidden)]
      args.push("--ffn", String(shape.ffn), "--experts", String(shape.experts), "--topk", String(shape.topk), "--warmup", "2", "--reps", "5")
      const theirs = json(spawnSync(python, args, { encoding: "utf8", timeout: Math.min(180_000, remainingMs()) }), "PyTorch")
      assert(theirs.error === undefined, `PyTorch: ${theirs.error}`)
      const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
      const pleatMs = median(ours.forwardMs.map((f, i) => f + ours.backwardMs[i]))
      return {
        pleat: { ...ours, medianStepMs: pleatMs, tflops: theirs.flopsPerStep / (pleatMs / 1000) / 1e12 },
        pytorch: theirs,
        speedup: theirs.medianMs / pleatMs,
        ...againstTarget(theirs.medianMs / pleatMs, 1),
        note: "pleat does not run the router's backward (under 0.01% of the FLOPs); both sides' TFLOP/s count the model's FLOPs",
      }
    })
  }

  // The NCCL backend's native side on one GPU: real NCCL loaded as the backend loads it, a
  // communicator of one member, and every op's plan (NcclPlan) run through the staging executor,
  // each result equal to Collective.outputFor's (one member: the same bits).
  if (status.available && process.env.PLEAT_NCCL_LIB === undefined)
    skipped("NCCL: the contract subset one GPU allows", "PLEAT_NCCL_LIB is unset (device-check.sh found no libnccl.so.2)")
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
}
