// The child process of ImportMemory.test.ts: `pleat import` of a model directory into a checkpoint
// (import MODEL_DIR OUT), `pleat export` of a checkpoint into a model directory (export CHECKPOINT
// OUT), as the CLI calls them, or nothing (baseline); then the process's peak resident memory in kB.
// It runs the compiled modules of dist/, which the tests' global setup builds from src/.
import * as HfDirectory from "../../dist/train/HfDirectory.js"
import * as HfImport from "../../dist/train/HfImport.js"

const [command, from, out] = process.argv.slice(2)
if (command === "import") HfImport.write({ modelDir: from, out, seed: 1, dtype: "float32" })
else if (command === "export") HfDirectory.write({ checkpoint: from, out, format: "auto", dtype: "float32", maxShardBytes: 32 * 2 ** 20 })
process.stdout.write(`${JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS })}\n`)
