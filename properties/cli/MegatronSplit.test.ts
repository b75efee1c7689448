// Megatron-LM's --split of one --data-path dataset (MegatronSplit): for any documents and split,
// `pleat train --data-path PREFIX [--split S]` is the job of pleat's --data PREFIX.bin with the
// training documents' ids as --data-range and the validation ones' as --eval-data(-range), by
// Megatron-Core's rule written out here (normalized, cumulative, Python's round); 969,30,1 without
// --split, as Megatron-LM; the test split is not read; and what cannot be split is refused.
// --data-range on its own: the windows are those of a file holding the range alone.
import { writeFileSync } from "node:fs"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as MegatronArgs from "../../src/cli/MegatronArgs.js"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import * as TokenFile from "../../src/train/TokenFile.js"
import { fresh, run } from "./cliRun.js"
import { dataset } from "./megatronDataset.js"
import { refused } from "./refused.js"

/** Python's round(x): halves to even. */
const pyRound = (x: number): number => {
  const r = Math.round(x)
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/** Megatron-Core's document ranges of a split, written out: [first, end) or undefined, for train, valid, test. */
const megatronRanges = (weights: ReadonlyArray<number>, documents: number): Array<[number, number] | undefined> => {
  const padded = [...weights, 0, 0, 0].slice(0, 3)
  const total = padded.reduce((a, b) => a + b, 0)
  const normalized = padded.map((w) => w / total)
  const bookends = [0]
  for (const w of normalized) bookends.push((bookends[bookends.length - 1] as number) + w)
  return normalized.map((w, i) => {
    const [first, end] = [pyRound((bookends[i] as number) * documents), pyRound((bookends[i + 1] as number) * documents)]
    return w > 0 && first < end ? [first, end] : undefined
  })
}

const model = ["--num-layers", "2", "--num-experts", "4", "--seq-length", "8"]

const resolved = (argv: ReadonlyArray<string>) => {
  const r = TrainOptions.resolve(argv)
  if (r === "help") throw new Error("unexpected help")
  return r.setup
}

describe("Megatron-LM's --split of --data-path", () => {
  test("the training and validation documents as --data-range and --eval-data, by Megatron-Core's rule; 969,30,1 by default", () => {
    const dir = fresh("megatron-split")
    let cases = 0
    let jobs = 0
    let withEval = 0
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 60 }),
        fc.option(fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 3 }), { nil: undefined }),
        (lengths, weights) => {
          const split = weights ?? [969, 30, 1]
          const ranges = megatronRanges(split, lengths.length)
          const starts = [0]
          for (const n of lengths) starts.push((starts.at(-1) as number) + n)
          const [train, valid] = ranges
          // Documents of ids 0..31 (the model's vocabulary).
          const prefix = dataset(
            dir,
            `d${cases++}`,
            lengths.map((n, d) => Array.from({ length: n }, (_, k) => (d * 7 + k) % 32)),
          )
          const argv = [...model, "--data-path", prefix, ...(weights === undefined ? [] : ["--split", weights.join(",")])]
          const ids = (r: [number, number]) => `${starts[r[0]]}:${starts[r[1]]}`
          const windowed = (r: [number, number] | undefined) => r !== undefined && (starts[r[1]] as number) - (starts[r[0]] as number) >= 9
          if (split.every((w) => w === 0) || train === undefined || !windowed(train) || (valid !== undefined && !windowed(valid))) {
            // No split to train on, or a split too short for one sequence: refused, naming the flag.
            expect(() => resolved(argv)).toThrow(/--split|--data-range|--eval-data-range|--data|--eval-data/)
            return
          }
          const pleat = [...model, "--data", `${prefix}.bin`, "--data-dtype", "uint16", "--data-range", ids(train)]
          const held = valid === undefined ? [] : ["--eval-data", `${prefix}.bin`, "--eval-data-range", ids(valid)]
          expect(resolved(argv)).toEqual(resolved([...pleat, ...held]))
          jobs++
          if (valid !== undefined) withEval++
          const note = MegatronArgs.translate(argv).notes.join(" ")
          expect(note).toContain(`training on documents ${train[0]} to ${train[1] - 1} (ids ${ids(train)})`)
          if (weights === undefined) expect(note).toContain("969, 30, 1 (Megatron-LM's default)")
        },
      ),
      { numRuns: 80 },
    )
    expect(cases).toBeGreaterThan(40)
    // Most draws are jobs, some of them with validation documents.
    expect(jobs).toBeGreaterThan(20)
    expect(withEval).toBeGreaterThan(5)
  })

  test("Python's round: a half goes to the even document", () => {
    // 10 documents at 1,1: the boundary 0.5 x 10 = 5 exactly; at 1,3 over 2 documents: 0.25 x 2 = 0.5 rounds to 0.
    const dir = fresh("megatron-split-round")
    const prefix = dataset(dir, "two", [Array.from({ length: 20 }, (_, k) => k % 32), Array.from({ length: 20 }, (_, k) => (k + 3) % 32)])
    const made = MegatronArgs.translate(["--data-path", prefix, "--split", "1,3"])
    // round(0.5) = 0: no training documents at all.
    expect(made.problems.map((p) => p.message).join(" ")).toContain("leaves no training documents of the 2")
    const even = MegatronArgs.translate(["--data-path", prefix, "--split", "3,1"])
    // round(1.5) = 2: both documents train; the validation share rounds to nothing.
    expect(even.argv).toContain("--data-range=0:40")
    expect(even.argv.some((a) => a.startsWith("--eval-data"))).toBe(false)
  })

  test("pleat train evaluates on the validation split; pleat verify trains on the training split and reads no validation", async () => {
    const dir = fresh("megatron-split-run")
    const prefix = dataset(
      dir,
      "run",
      Array.from({ length: 40 }, (_, d) => Array.from({ length: 30 }, (_, k) => (d * 7 + k) % 32)),
    )
    const flags = [...model, "--data-path", prefix, "--tensor-model-parallel-size", "2", "--train-iters", "2"]
    const trained = await run(["train", ...flags])
    expect(trained.status, trained.err).toBe(0)
    expect(trained.err).toContain("training on documents 0 to 38 (ids 0:1170), validation on documents 39 to 39 (ids 1170:1200)")
    expect(trained.out).toMatch(/eval after step 2: loss \d/)
    const verified = await run(["verify", ...flags])
    expect(verified.status, verified.err).toBe(0)
  }, 60_000)

  test("what cannot be split is refused: --split without --data-path or with per-split paths, bad proportions, a truncated index", () => {
    const dir = fresh("megatron-split-bad")
    const prefix = dataset(dir, "ok", [Array.from({ length: 40 }, (_, k) => k % 32)])
    expect(refused(["train", "--split", "9,1"])).toContain('--split: "9,1" splits --data-path\'s documents alone')
    expect(refused(["train", "--data-path", prefix, "--valid-data-path", prefix, "--split", "9,1"])).toContain("splits --data-path's documents alone")
    expect(refused(["train", "--data-path", prefix, "--split", "1,2,3,4"])).toContain("is not up to three proportions")
    expect(refused(["train", "--data-path", prefix, "--split", "0,0"])).toContain("is not up to three proportions")
    writeFileSync(`${prefix}.idx`, Buffer.from(Buffer.concat([Buffer.from("MMIDIDX\0\0", "latin1"), Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 8]), Buffer.alloc(16, 1)])))
    expect(refused(["train", "--data-path", prefix])).toContain("is shorter than its")
  })
})

describe("--data-range", () => {
  test("reads the windows of a file holding the range alone; ranges that do not fit, or without their file, are refused", () => {
    const dir = fresh("data-range")
    const ids = Array.from({ length: 200 }, (_, k) => (k * 13) % 50)
    const whole = path.join(dir, "whole.bin")
    writeFileSync(whole, Buffer.from(new Uint16Array(ids).buffer))
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 150 }), fc.integer({ min: 9, max: 50 }), fc.integer({ min: 2, max: 8 }), (first, length, seq) => {
        const end = Math.min(200, first + length)
        const part = path.join(dir, `part-${first}-${end}.bin`)
        writeFileSync(part, Buffer.from(new Uint16Array(ids.slice(first, end)).buffer))
        const ranged = TokenFile.inspect(whole, "uint16", seq, 50, "data", { first, end })
        const alone = TokenFile.inspect(part, "uint16", seq, 50)
        if (end - first < seq + 1) {
          expect(ranged).toMatchObject({ _tag: "ConfigError" })
          return
        }
        if ("_tag" in ranged || "_tag" in alone) throw new Error("expected token files")
        expect(TokenFile.windows(ranged, seq)).toBe(TokenFile.windows(alone, seq))
        for (let w = 0; w < TokenFile.windows(alone, seq); w++) expect(TokenFile.read(ranged, seq, w, 50)).toEqual(TokenFile.read(alone, seq, w, 50))
      }),
      { numRuns: 60 },
    )
    expect(refused(["train", "--data", whole, "--data-range", "150:250", "--vocab", "50"])).toContain('--data-range: "150:250" is not a range of the 200 ids')
    expect(refused(["train", "--data", whole, "--data-range", "5-9"])).toContain("is not a range of ids START:END")
    expect(refused(["train", "--data-range", "0:10"])).toContain('--data-range: "0:10" cuts --data, but there is no --data')
    expect(refused(["train", "--eval-data-range", "0:10"])).toContain("cuts --eval-data, but there is no --eval-data")
  })
})
