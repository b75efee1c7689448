// Running a pleat command in this process for the CLI tests of the Hugging Face export and
// import: its status and what it printed, the loss a checkpoint evaluates to, and fresh
// temporary folders.
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { expect } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import { records } from "./tokenFiles.js"

/** Runs `pleat argv...`; its exit status, stdout and stderr. */
export const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err }
}

/** A new empty temporary folder named after `label`. */
export const fresh = (label: string): string => mkdtempSync(path.join(tmpdir(), `pleat-${label}-`))

/**
 * The evaluation loss of `pleat train flags... --eval-data tokens --eval-batches 1 --log json`
 * (one global batch of the token file), its exit status checked.
 */
export const evalLoss = async (flags: ReadonlyArray<string>, tokens: string): Promise<number> => {
  const e = await run(["train", ...flags, "--eval-data", tokens, "--eval-batches", "1", "--log", "json"])
  expect(e.status, e.err).toBe(0)
  return records(e.out, "eval")[0]?.evalLoss as number
}

/** The flags of a folded mapping: --world, --tp, --cp, --pp, --ep and --etp. */
export const mapping = (world: number, tp: number, cp: number, pp: number, ep: number, etp = 1): Array<string> =>
  ["--world", world, "--tp", tp, "--cp", cp, "--pp", pp, "--ep", ep, "--etp", etp].map(String)
