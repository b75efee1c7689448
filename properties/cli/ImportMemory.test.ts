// `pleat import` holds a tensor at a time, never a file or the model: the peak resident memory an
// import adds to a process that has loaded the same code stays under 1.5 times the weights' bytes
// (a Mixtral of 16 layers, 206 MiB of float32 weights in files of at most 32 MiB, the largest
// tensor 2 MiB: 95 to 147 MiB added over seven runs, V8's slack for garbage not yet collected and
// the code's own warm-up, which do not grow with the model: 2 layers' 27 MiB added 80 to 90).
// Reading every file whole and widening every tensor to float64 before writing, as pleat did,
// added about eight times the weights' bytes (832 MiB for 8 layers' 104 MiB); holding every
// parameter with its zero moments before writing would add three times. The import is also
// checked to be the weights.
import { spawnSync } from "node:child_process"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import path from "node:path"
import { expect, onTestFinished, test } from "vitest"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as HfExport from "../../src/train/HfExport.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Params from "../../src/train/Params.js"
import * as Safetensors from "../../src/train/Safetensors.js"
import { fresh } from "./cliRun.js"

const modelOf = (layers: number): ModelConfig.ModelConfig => ({
  ...ModelConfig.small,
  layers,
  hidden: 256,
  heads: 8,
  kvHeads: 4,
  ffn: 512,
  moeFfn: 512,
  experts: 8,
  topk: 2,
  seq: 64,
  vocab: 2048,
  moeEvery: 1,
})

/** A Mixtral of `layers` layers written as an export writes one (files and index); its directory and weight bytes. */
const directory = (layers: number): { readonly dir: string; readonly weightBytes: number } => {
  const model = modelOf(layers)
  let seed = 7
  const next = () => {
    seed = (seed * 1103515245 + 12345) >>> 0
    return seed / 2 ** 32 - 0.5
  }
  const values = new Map(
    Params.specs(model).map((s) => [s.name, Tensor.fromArray(Float32Array.from({ length: s.shape.reduce((p, x) => p * x, 1) }, next), s.shape, { dtype: "float32" })]),
  )
  const record = Checkpoint.modelRecord(model, 0.01)
  const entries = HfExport.tensors(record, "mixtral", values, "float32", "memory")
  const groups = HfExport.shards(entries, 32 * 2 ** 20)
  const dir = path.join(fresh("import-memory"), "model")
  mkdirSync(dir, { recursive: true })
  const weightMap: Record<string, string> = {}
  groups.forEach((group, i) => {
    const file = `model-${i + 1}-of-${groups.length}.safetensors`
    Safetensors.write(path.join(dir, file), group)
    for (const e of group) weightMap[e.name] = file
  })
  const weightBytes = entries.reduce((n, e) => n + Safetensors.byteLength(e), 0)
  writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: weightBytes }, weight_map: weightMap }))
  writeFileSync(path.join(dir, "config.json"), HfExport.configText(record, "mixtral", "float32"))
  return { dir, weightBytes }
}

/** Peak resident memory (bytes) of the child: an import of `modelDir` into `out`, or none. */
const peak = (args: ReadonlyArray<string>): number => {
  const child = spawnSync(process.execPath, ["--import", "tsx", "properties/cli/importMemoryChild.ts", ...args], { encoding: "utf8", timeout: 120_000 })
  expect(child.status, child.stderr).toBe(0)
  return (JSON.parse(child.stdout.trim().split("\n").at(-1) as string) as { maxRssKb: number }).maxRssKb * 1024
}

test("an import's peak memory stays under 1.5 times the weights' bytes, and the checkpoint holds the weights", () => {
  const baseline = peak(["--baseline"])
  const model = directory(16)
  const out = path.join(fresh("import-memory-out"), "ckpt")
  onTestFinished(() => {
    for (const dir of [path.dirname(model.dir), path.dirname(out)]) rmSync(dir, { recursive: true, force: true })
  })
  const added = peak([model.dir, out]) - baseline
  const mib = (x: number) => `${(x / 2 ** 20).toFixed(1)} MiB`
  expect(added, `the import added ${mib(added)} for ${mib(model.weightBytes)} of weights`).toBeLessThan(1.5 * model.weightBytes)
  const imported = Checkpoint.values(out).values
  const index = JSON.parse(readFileSync(path.join(model.dir, "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> }
  for (const [hf, pleat] of [
    ["model.embed_tokens.weight", "embedding"],
    ["model.norm.weight", "finalNorm"],
  ] as const) {
    const stored = Safetensors.read(readFileSync(path.join(model.dir, index.weight_map[hf] as string))).get(hf)?.values
    expect(Array.from((imported.get(pleat) as Tensor.Tensor).data), pleat).toEqual(Array.from(stored ?? []))
  }
}, 300_000)
