// The child process of ImportMemory.test.ts: `pleat import` of MODEL_DIR into OUT (HfImport, as
// the CLI calls it), or nothing with --baseline; then the process's peak resident memory in kB.
import * as HfImport from "../../src/train/HfImport.js"

const [modelDir, out] = process.argv.slice(2)
if (modelDir !== "--baseline") HfImport.write({ modelDir: modelDir as string, out: out as string, seed: 1, dtype: "float32" })
process.stdout.write(`${JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS })}\n`)
