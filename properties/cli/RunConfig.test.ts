// The run configuration of `pleat train` / `pleat verify`: defaults < JSON config < flags; every
// problem of the flags and the config file reported at once on one line, each named as the user
// wrote it; errors caused by defaults name those defaults; config files that cannot be read,
// are not JSON or hold unknown keys exit 2 with one line.
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import * as Result from "effect/Result"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as RunConfig from "../../src/cli/RunConfig.js"
import * as ChooseBackend from "../../src/runtime/ChooseBackend.js"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import { configText as configFile } from "./configFile.js"
import { refused } from "./refused.js"

/** Flags that are each wrong on their own, with the name each error must carry. */
const badFlags: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
  [["--kv-heads", "x"], '--kv-heads: "x" is not a positive integer'],
  [["--layers", "0"], '--layers: "0" is not a positive integer'],
  [["--steps", "-2"], '--steps: "-2" is not a non-negative integer'],
  [["--tp", "-1"], '--tp: "-1" is not a positive integer'],
  [["--dtype", "float16"], '--dtype: "float16" is not allowed; fix: use one of float32, float64'],
  [["--backend", "gloo"], `--backend: "gloo" is not allowed; fix: use one of ${ChooseBackend.names.join(", ")}`],
  [["--log", "xml"], '--log: "xml" is not allowed'],
  [["--log-level", "loud"], '--log-level: "loud" is not allowed'],
  [["--stepz", "3"], 'arguments: "--stepz" is not a known flag; fix: did you mean --steps?'],
  [["--order="], '--order: "" is empty'],
  [["--world", "2", "--world", "2"], 'arguments: "--world" is given twice'],
]

describe("every problem at once", () => {
  test("any set of bad flags is reported on one line, each named as typed", () => {
    fc.assert(
      fc.property(fc.subarray([...badFlags.keys()], { minLength: 1 }), fc.constantFrom("train", "verify"), (picked, command) => {
        const argv = picked.flatMap((i) => (badFlags[i] as (typeof badFlags)[number])[0])
        const line = refused([command, ...argv])
        for (const i of picked) expect(line).toContain((badFlags[i] as (typeof badFlags)[number])[1])
        // One problem per bad flag, no more: each problem has exactly one fix.
        expect(line.split("; fix: ").length - 1).toBe(picked.length)
      }),
      { numRuns: 60 },
    )
  })

  test("problems of the config file and of the flags come together", () => {
    const file = configFile(JSON.stringify({ steps: -1, dtype: "half", stepz: 1 }))
    const line = refused(["train", "--config", file, "--tp", "x"])
    expect(line).toContain('--tp: "x" is not a positive integer')
    expect(line).toContain(`"steps" in ${file}: -1 is not a non-negative integer; fix: set "steps" in ${file} to 0, 1, 2, ...`)
    expect(line).toContain(`"dtype" in ${file}: "half" is not allowed`)
    expect(line).toContain(`--config: ${JSON.stringify(file)} has the unknown key "stepz"; fix: did you mean "steps"?`)
  })
})

describe("the config file", () => {
  test("unreadable, not JSON, not an object, unknown keys: exit 2, one line naming --config", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-runconfig-"))
    expect(refused(["train", "--config", path.join(dir, "missing.json")])).toMatch(/^pleat train: --config: ".*missing.json" cannot be read \(ENOENT\); fix: /)
    expect(refused(["train", "--config", dir])).toMatch(/--config: ".*" cannot be read \(EISDIR\)/)
    expect(refused(["train", "--config", configFile("{ steps: 2")])).toMatch(/--config: ".*job.json" is not valid JSON at line 1, column 3: .+; fix: /)
    expect(refused(["train", "--config", configFile("[1, 2]")])).toMatch(/--config: ".*job.json" holds an array, not a JSON object/)
    expect(refused(["train", "--config", configFile('{"help": true}')])).toContain('has the unknown key "help"')
    expect(refused(["verify", "--config", configFile('{"config": "other.json"}')])).toContain('has the unknown key "config"')
  })

  test("a cross-field error on a value from the file names the file's key", () => {
    const file = configFile(JSON.stringify({ layers: 3 }))
    expect(refused(["train", "--config", file])).toContain(`"layers" in ${file}: 3 is not divisible by pp*vpp = 2*1`)
  })

  test("precedence: a flag beats the file, the file beats the default", () => {
    // Settings that no cross-field check involves, so any values decode.
    const free = ["steps", "seed", "dtype", "log", "log-level", "backend"] as const
    const value = (k: (typeof free)[number]) => {
      const s = RunConfig.settings[k]
      return s.kind === "choice" ? fc.constantFrom(...s.options) : fc.integer({ min: 1, max: 1000 })
    }
    const layer = fc.record(Object.fromEntries(free.map((k) => [k, value(k)])), { requiredKeys: [] }) as fc.Arbitrary<Record<string, string | number>>
    fc.assert(
      fc.property(layer, layer, (file, given) => {
        const decoded = RunConfig.decode({ file: "job.json", values: file }, given)
        expect(Result.isSuccess(decoded)).toBe(true)
        if (Result.isFailure(decoded)) return
        for (const k of free) {
          expect(decoded.success.config[k]).toBe(given[k] ?? file[k] ?? RunConfig.defaults[k])
          expect(decoded.success.sources[k]?._tag).toBe(k in given ? "flag" : k in file ? "file" : "default")
        }
      }),
      { numRuns: 100 },
    )
  })
})

describe("errors caused by defaults name them", () => {
  test("--world 1 fails because tp, cp, pp and ep default to 2, and says so", () => {
    const line = refused(["train", "--world", "1"])
    expect(line).toMatch(/^pleat train: --world: 1 is not divisible by tp\*cp\*pp = 2\*2\*2 = 8; fix: /)
    expect(line).toContain("defaults in effect (not given): --tp 2, --cp 2, --pp 2, --ep 2")
  })

  test("a given value is never called a default; the default that remains is named", () => {
    const line = refused(["train", "--world", "1", "--tp", "1", "--cp", "1", "--pp", "1"])
    expect(line).toContain("--world: 1 is not divisible by etp*ep*pp = 1*2*1 = 2")
    expect(line).toContain("defaults in effect (not given): --ep 2")
    expect(line).not.toMatch(/--(tp|cp|pp) \d/)
    // With every degree given, one rank works.
    const ok = TrainOptions.resolve(["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"])
    expect(ok === "help" ? 0 : ok.setup.parallel.world).toBe(1)
  })

  test("a defaulted field itself is named as a default, with the flag to change it", () => {
    // kv-heads defaults to 2, which tp 4 cannot split; heads (default 4) is involved too.
    const line = refused(["train", "--world", "16", "--tp", "4"])
    expect(line).toMatch(/^pleat train: --kv-heads: 2 must divide heads = 4 and be divisible by tp = 4; fix: /)
    expect(line).toContain("defaults in effect (not given):")
    expect(line).toContain("--heads 4")
    expect(line).toContain("--kv-heads 2")
  })
})

describe("each default is written once", () => {
  test("the help shows every default from the settings table, and the decoded defaults are those", () => {
    const io = memoryIo()
    expect(Cli.run(["train", "--help"], io)).toBe(0)
    for (const [k, v] of Object.entries(RunConfig.defaults)) {
      const line = io.out.split("\n").find((l) => l.trimStart().startsWith(`--${k} `))
      expect(line, k).toBeDefined()
      expect(line).toContain(`(default ${v})`)
    }
    const decoded = RunConfig.decode(undefined, {})
    expect(Result.isSuccess(decoded)).toBe(true)
    if (Result.isSuccess(decoded)) expect(decoded.success.config).toEqual(RunConfig.defaults)
  })
})

describe("outputs are checked before any work", () => {
  test("--save never replaces a file or a folder that holds something else; --trace is a file in a folder that exists or can be made", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-outputs-"))
    const file = path.join(dir, "notes.txt")
    writeFileSync(file, "keep me")
    expect(refused(["train", "--save", file])).toContain(`--save: ${JSON.stringify(file)} is a file, not a checkpoint directory`)
    expect(refused(["train", "--save", dir])).toContain("is a folder pleat did not write (it holds files and no pleat-checkpoint marker)")
    expect(refused(["train", "--trace", dir])).toContain(`--trace: ${JSON.stringify(dir)} is a directory`)
    expect(refused(["train", "--trace", path.join(file, "t.json")])).toContain(`cannot be written (${file} is a file, not a directory); fix: pass the path of a file in`)
    // --save makes a folder, and its fix says so.
    expect(refused(["train", "--save", path.join(file, "ck")])).toContain(`cannot be written (${file} is a file, not a directory); fix: pass the path of a folder in`)
    // A new folder, however deep, and an empty one are fine.
    for (const ok of [path.join(dir, "a", "b", "ckpt"), mkdtempSync(path.join(tmpdir(), "pleat-empty-"))]) {
      const resolved = TrainOptions.resolve(["--save", ok, "--trace", path.join(dir, "x", "t.json")])
      expect(resolved === "help" ? undefined : resolved.save).toBe(ok)
    }
  })

  test("--trace is never the --save directory or a folder above it (the trace, written after the last save, would fail on it after the whole run); a file inside it is fine", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-outputs-"))
    const save = path.join(dir, "ckpt")
    for (const [trace, saveAt] of [
      [save, save],
      [path.join(dir, "runs"), path.join(dir, "runs", "ckpt")],
      [`${save}/../ckpt`, save],
      [path.relative(process.cwd(), save), save],
    ] as const) {
      const line = refused(["train", "--save", saveAt, "--trace", trace])
      expect(line).toContain(`--trace: ${JSON.stringify(trace)} is the --save directory ${saveAt} or a folder above it`)
    }
    const resolved = TrainOptions.resolve(["--save", save, "--trace", path.join(save, "trace.json")])
    expect(resolved === "help" ? undefined : resolved.trace).toBe(path.join(save, "trace.json"))
    // A sibling whose name starts with the folder's is not inside it.
    const sibling = TrainOptions.resolve(["--save", save, "--trace", `${save}-trace.json`])
    expect(sibling === "help" ? undefined : sibling.trace).toBe(`${save}-trace.json`)
  })

  test("--trace is never a file the run reads (--config, --data, --eval-data, --definition's module), by any path to it, which it would overwrite", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-outputs-"))
    const config = path.join(dir, "run.json")
    writeFileSync(config, JSON.stringify({ steps: 2 }))
    const tokens = path.join(dir, "train.bin")
    writeFileSync(tokens, Buffer.from(new Uint16Array(4096).map((_, i) => i % 32).buffer))
    const module = path.join(dir, "model.mjs")
    writeFileSync(module, "export const m = {}")
    symlinkSync(tokens, path.join(dir, "link.bin"))
    for (const [flags, trace, reader] of [
      [["--config", config], config, "--config"],
      [["--data", tokens, "--vocab", "32"], path.join(dir, "link.bin"), "--data"],
      [["--data", tokens, "--vocab", "32", "--eval-data", path.join(dir, "link.bin")], `${dir}/./train.bin`, "--data"],
      [["--definition", `${module}#m`], module, "--definition"],
    ] as const) {
      expect(refused(["train", ...flags, "--trace", trace])).toContain(`--trace: ${JSON.stringify(trace)} is the file ${reader} reads (writing it would replace it)`)
    }
    expect(readFileSync(config, "utf8")).toBe(JSON.stringify({ steps: 2 }))
  })

  test("a trace that cannot be written at the end of a run (a disk full by then) is one line naming --trace, not a stack", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-outputs-"))
    const trace = path.join(dir, "trace.json")
    // The check at the start passes; the write at the end fails as a full disk would.
    const base = memoryIo()
    const io = {
      ...base,
      writeFile: (file: string) => {
        throw Object.assign(new Error(`ENOSPC: no space left on device, open '${file}'`), { code: "ENOSPC" })
      },
    }
    const code = await Cli.run(["train", "--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--steps", "1", "--trace", trace], io)
    expect(code).toBe(2)
    expect(base.err.trim().split("\n")).toEqual([
      `pleat train: --trace: ${JSON.stringify(trace)} cannot be written (ENOSPC); fix: pass the path of a file in a directory you can write`,
    ])
  })
})
