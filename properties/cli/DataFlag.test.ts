// `pleat train --data FILE` as users run it: a folded mapping trained on a token file agrees
// with one rank (pleat verify), every backend reads the same sequences (the same losses on local
// and threads), the file is what is learned (a file of one repeated id is learned to near-zero
// loss; the synthetic language is not what ran), and a file that cannot work is refused before any
// work (exit 2, one line naming the setting as written, the value and the fix).
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import { configFile } from "./configFile.js"
import { refused } from "./refused.js"
import { records, uint16File, walk } from "./tokenFiles.js"

const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err }
}

const corpus = uint16File(walk(600, 7))

const folded = ["--world", "4", "--tp", "1", "--cp", "2", "--pp", "2", "--ep", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4", "--vocab", "40"]
const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--hidden", "16", "--seq", "8", "--global-batch", "2", "--vocab", "16"]

const losses = (out: string): Array<number> => records(out, "step").map((o) => o.loss as number)

describe("training on a token file", () => {
  test("a folded mapping agrees with one rank on the file's sequences (pleat verify, float64)", async () => {
    const r = await run(["verify", ...folded, "--data", corpus, "--dtype", "float64", "--steps", "3"])
    expect(r.status, r.out + r.err).toBe(0)
    expect(r.out).toMatch(/tolerances for float64: .*: OK/)
  }, 60_000)

  test("local and threads read the same sequences: the same losses; the synthetic language gives others", async () => {
    const flags = [...folded, "--data", corpus, "--steps", "3", "--log", "json"]
    const local = await run(["train", ...flags])
    const threads = await run(["train", ...flags, "--backend", "threads"])
    const synthetic = await run(["train", ...folded, "--steps", "3", "--log", "json"])
    expect(local.status, local.err).toBe(0)
    expect(threads.status, threads.err).toBe(0)
    expect(losses(local.out)).toHaveLength(3)
    expect(losses(threads.out)).toEqual(losses(local.out))
    expect(losses(synthetic.out)[0]).not.toBe(losses(local.out)[0])
  }, 60_000)

  test("a file of one repeated id is learned: the loss falls from about ln(vocab) to near zero", async () => {
    const r = await run(["train", ...oneRank, "--data", uint16File(Array.from({ length: 400 }, () => 5)), "--steps", "20", "--log", "json"])
    expect(r.status, r.err).toBe(0)
    const l = losses(r.out)
    expect(l[0]).toBeGreaterThan(1.5)
    expect(l.at(-1)).toBeLessThan(0.2)
  }, 60_000)
})

describe("a token file that cannot work is refused before any work", () => {
  test("ids at or above the vocabulary: the largest named, the default --vocab said to be one", () => {
    expect(refused(["train", "--data", corpus])).toMatch(
      /^pleat train: --data: ".*tokens\.bin" holds token ids up to \d+ \(the first of 32 or more at token \d+\), not all below --vocab 32; fix: use --vocab \d+ or more \(the tokenizer's vocabulary\), or --data-dtype uint32 if it holds 4-byte ids; defaults in effect \(not given\): --vocab 32, --data-dtype uint16/,
    )
  })

  test("no file, named as the config file's key; --data-dtype without --data", () => {
    const job = configFile({ data: path.join(tmpdir(), "pleat-no-such-dir", "train.bin") })
    expect(refused(["train", "--config", job])).toContain(`"data" in ${job}: "${path.join(tmpdir(), "pleat-no-such-dir", "train.bin")}" cannot be read (ENOENT)`)
    expect(refused(["train", "--data-dtype", "uint32"])).toBe(
      'pleat train: --data-dtype: "uint32" says how --data stores its ids, but there is no --data; fix: add --data FILE, or drop --data-dtype',
    )
    expect(refused(["verify", ...folded, "--data", uint16File([1, 2, 3])])).toContain(
      "holds 3 tokens, fewer than one sequence of --seq 8 needs (9: the inputs and their next-token targets); fix: use --seq 2 or less, or a longer file",
    )
  })
})
