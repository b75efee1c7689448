// The Python the transformers checks of `pleat export` and `pleat import` run: one that imports
// torch and transformers ($PLEAT_PYTHON, else python3), or undefined (the checks are skipped with
// one line), and transformers' loss of each window of a token file (scripts/check-hf-export.py).
import { spawnSync } from "node:child_process"
import path from "node:path"
import { expect } from "vitest"

const root = path.resolve(import.meta.dirname, "../..")

/** A Python that imports torch and transformers, or undefined. */
export const python = [process.env.PLEAT_PYTHON, "python3"].find(
  (p): p is string => p !== undefined && p !== "" && spawnSync(p, ["-c", "import torch, transformers"], { stdio: "ignore" }).status === 0,
)

/** Says, once per test file, that `what` was skipped for want of transformers. */
export const sayIfSkipped = (what: string): void => {
  if (python === undefined) console.log(`${what}: the transformers check was skipped (no Python with torch and transformers; set PLEAT_PYTHON)`)
}

/** transformers' class name and loss of each window of seq + 1 uint16 ids in `tokens`, for the model in `dir`. */
export const transformersLosses = (
  dir: string,
  tokens: string,
  seq: number,
  dtype: "float32" | "float64",
): { readonly architecture: string; readonly losses: ReadonlyArray<number> } => {
  const checked = spawnSync(python as string, [path.join(root, "scripts/check-hf-export.py"), dir, tokens, String(seq), "uint16", dtype], { encoding: "utf8" })
  expect(checked.status, checked.stderr).toBe(0)
  return JSON.parse(checked.stdout.trim().split("\n").at(-1) as string) as { architecture: string; losses: Array<number> }
}
