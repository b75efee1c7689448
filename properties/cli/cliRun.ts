// Running a pleat command in this process for the CLI tests of the Hugging Face export and
// import: its status and what it printed, and fresh temporary folders.
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"

/** Runs `pleat argv...`; its exit status, stdout and stderr. */
export const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err }
}

/** A new empty temporary folder named after `label`. */
export const fresh = (label: string): string => mkdtempSync(path.join(tmpdir(), `pleat-${label}-`))
