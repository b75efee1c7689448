// device-moe-layer.mjs: pleat's side of the MoE layer comparison on the GPU, run by
// scripts/device-check.mjs in a child process (a fault in a kernel ends this process, not the
// report). Loads cuBLAS from argv[2], times one MoE layer forward and backward on device-resident
// tensors (Cuda.deviceOps().timeMoeLayer) at the shape of argv[3] (JSON), prints one JSON object.
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const Cuda = await import(path.join(root, "dist/native/Cuda.js"))
const [cublasPath, shapeJson, repsText] = process.argv.slice(2)
try {
  const loaded = Cuda.loadCublas(cublasPath)
  if (!loaded.loaded) throw new Error(`cuBLAS: ${loaded.error}`)
  const timing = Cuda.deviceOps().timeMoeLayer(JSON.parse(shapeJson), Number(repsText ?? 5))
  process.stdout.write(`${JSON.stringify(timing)}\n`)
} catch (error) {
  process.stdout.write(`${JSON.stringify({ error: String(error?.message ?? error) })}\n`)
  process.exitCode = 1
}
