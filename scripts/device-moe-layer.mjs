// device-moe-layer.mjs: pleat's side of the MoE layer comparison on the GPU, run by
// scripts/device-check.mjs in a child process (a fault in a kernel ends this process, not the
// report). Loads cuBLAS from argv[2]; first runs the layer once on two small shapes and holds its
// output and gradients against the float64 reference (scripts/moe-layer-reference.mjs, the
// device's bf16 roundings applied: what is left is float32 summation order), then times one MoE
// layer forward and backward on device-resident tensors (CudaTiming.timings().moeLayer) at the
// shape of argv[3] (JSON). Prints one JSON object.
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const Cuda = await import(path.join(root, "dist/native/Cuda.js"))
const CudaTiming = await import(path.join(root, "dist/native/CudaTiming.js"))
const Bf16Round = await import(path.join(root, "dist/tensor/kernels/Bf16Round.js"))
const { reference, relativeError } = await import(path.join(root, "scripts/moe-layer-reference.mjs"))

// Each result within 2% of the reference's largest value: float32 sums in another order, and a
// bf16 rounding that a last-bit difference tips, move it by ~1e-3; a wrong operand or leading
// dimension by the order of the values themselves.
const tolerance = 0.02
const checkShape = (shape, seed) => {
  let s = seed
  const random = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1
  const floats = (n, scale) => Float32Array.from({ length: n }, () => random() * scale)
  const { tokens: T, hidden: H, ffn: F, experts: E } = shape
  const inputs = { x: floats(T * H, 1), wr: floats(H * E, 0.5), wg: floats(E * H * F, 0.3), wu: floats(E * H * F, 0.3), wd: floats(E * F * H, 0.3), dy: floats(T * H, 1) }
  const got = CudaTiming.timings().runMoeLayer(inputs, shape)
  const want = reference({ ...inputs, chosen: got.chosen, probs: got.probs }, shape, Bf16Round.roundValue)
  const errors = Object.fromEntries(["out", "dx", "dwg", "dwu", "dwd"].map((name) => [name, relativeError(got[name], want[name])]))
  const bad = Object.entries(errors).filter(([, e]) => !(e <= tolerance))
  if (bad.length > 0) throw new Error(`${JSON.stringify(shape)}: ${bad.map(([n, e]) => `${n} ${e}`).join(", ")} from the float64 reference (tolerance ${tolerance})`)
  return { shape, errors }
}
const [cublasPath, shapeJson, repsText] = process.argv.slice(2)
try {
  const loaded = Cuda.loadCublas(cublasPath)
  if (!loaded.loaded) throw new Error(`cuBLAS: ${loaded.error}`)
  const checked = [checkShape({ tokens: 64, hidden: 32, ffn: 48, experts: 4, topk: 2 }, 7), checkShape({ tokens: 100, hidden: 72, ffn: 40, experts: 8, topk: 3 }, 11)]
  const timing = CudaTiming.timings().moeLayer(JSON.parse(shapeJson), Number(repsText ?? 5))
  process.stdout.write(`${JSON.stringify({ ...timing, checked })}\n`)
} catch (error) {
  process.stdout.write(`${JSON.stringify({ error: String(error?.message ?? error) })}\n`)
  process.exitCode = 1
}
