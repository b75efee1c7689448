// The `pleat` program as a test starts it in a process: node with dist/cli/main.js, which the
// global setup (buildDist.ts) has just compiled from src/.
import path from "node:path"

/** The repository's root folder. */
export const root = path.resolve(import.meta.dirname, "../..")

/** dist/cli/main.js: what `pleat` runs. */
export const pleatMain = path.join(root, "dist", "cli", "main.js")
