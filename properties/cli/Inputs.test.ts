// Inputs a user gets wrong, across commands: integers out of range (too large is said as such,
// with the largest accepted value), seeds from 0, config files that are not JSON (named by line
// and column), and worlds larger than one process hosts. Each is exit 2 and one line naming the
// field and the value, before any work.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as JsonText from "../../src/cli/JsonText.js"
import * as RunConfig from "../../src/cli/RunConfig.js"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import { configText as configFile } from "./configFile.js"
import { refused } from "./refused.js"

const maxSafe = Number.MAX_SAFE_INTEGER

/** Every integer flag of every command, with the words before it that make the command run. */
const integerFlags: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
  ...["world", "tp", "cp", "pp", "ep", "etp", "vpp"].map((f) => [["groups"], f] as const),
  ...(["train", "verify"] as const).flatMap((cmd) =>
    Object.entries(RunConfig.flags)
      .filter(([, spec]) => spec.kind === "int")
      .map(([f]) => [[cmd], f] as const),
  ),
]

describe("integer flags", () => {
  test("a value above the largest accepted one is called too large, naming that largest value; every integer flag of every command", () => {
    const digits = fc.stringMatching(/^[1-9][0-9]{16,40}$/).filter((s) => BigInt(s) > BigInt(maxSafe))
    fc.assert(
      fc.property(fc.constantFrom(...integerFlags), digits, ([before, flag], value) => {
        const line = refused([...before, `--${flag}`, value])
        const max = flag === "seed" ? 2 ** 32 - 1 : maxSafe
        expect(line).toContain(`--${flag}: "${value}" is too large (the largest accepted is ${max}); fix: write --${flag} ${max} or less`)
      }),
      { numRuns: 80 },
    )
  })

  test("the largest safe integer itself is not called too large, and one more is", () => {
    // 2^53 - 1 parses exactly; what refuses it (if anything) is a cross-field check, not the parser.
    expect(refused(["groups", "--world", String(maxSafe)])).not.toContain("too large (the largest accepted")
    expect(refused(["groups", "--world", "9007199254740992"])).toContain(`is too large (the largest accepted is ${maxSafe})`)
    expect(refused(["train", "--steps", "99999999999999999999"])).toBe(
      `pleat train: --steps: "99999999999999999999" is too large (the largest accepted is ${maxSafe}); fix: write --steps ${maxSafe} or less`,
    )
  })

  test("zero, negatives, fractions and words are still not positive integers", () => {
    for (const value of ["0", "-3", "1.5", "1e3", "ten", "0x10"]) {
      expect(refused(["train", "--layers", value])).toContain(`--layers: "${value}" is not a positive integer; fix: write --layers 1, 2, 3, ...`)
      // --steps takes 0 (evaluate only), nothing below.
      if (value !== "0") expect(refused(["train", "--steps", value])).toContain(`--steps: "${value}" is not a non-negative integer; fix: write --steps 0, 1, 2, ...`)
      expect(refused(["groups", "--world", "8", "--tp", value])).toContain(`--tp: "${value}" is not a positive integer`)
    }
  })

  test("in a config file: too large, negative seed and fractional counts each named with the file's key", () => {
    const file = configFile(JSON.stringify({ steps: 1e20, seed: -1, hidden: 2.5 }))
    const line = refused(["train", "--config", file])
    expect(line).toContain(`"steps" in ${file}: 100000000000000000000 is too large (the largest accepted is ${maxSafe})`)
    expect(line).toContain(`"seed" in ${file}: -1 is not a non-negative integer; fix: set "seed" in ${file} to 0, 1, 2, ...`)
    expect(line).toContain(`"hidden" in ${file}: 2.5 is not a positive integer`)
  })
})

describe("seeds", () => {
  test("any seed from 0 to 2^32 - 1 is accepted; outside, exit 2 naming the seed", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (seed) => {
        const resolved = TrainOptions.resolve(["--seed", String(seed)])
        expect(resolved === "help" ? undefined : resolved.setup.seed).toBe(seed)
      }),
      { numRuns: 50 },
    )
    expect(refused(["train", "--seed", "-1"])).toContain('--seed: "-1" is not a non-negative integer; fix: write --seed 0, 1, 2, ...')
    // Seeds are 32-bit words in the generators: 2^32 would silently repeat seed 0.
    expect(refused(["train", "--seed", String(2 ** 32)])).toContain(`--seed: "${2 ** 32}" is too large (the largest accepted is ${2 ** 32 - 1})`)
  })

  test("seed 0 trains, and its run differs from seed 1's", async () => {
    const train = async (seed: number) => {
      const io = memoryIo()
      const small = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--hidden", "16", "--seq", "8", "--global-batch", "2", "--steps", "2"]
      const status = await Cli.run(["train", ...small, "--seed", String(seed), "--log", "json"], io)
      expect(status, io.err).toBe(0)
      const summary = JSON.parse(io.out.trim().split("\n").at(-1) ?? "{}") as { msg: string; firstLoss: number; finalLoss: number }
      expect(summary.msg).toBe("summary")
      expect(Number.isFinite(summary.firstLoss) && Number.isFinite(summary.finalLoss)).toBe(true)
      return summary
    }
    const zero = await train(0)
    const one = await train(1)
    expect(zero.firstLoss).not.toBe(one.firstLoss)
  }, 60_000)
})

describe("config files that are not JSON", () => {
  test("a truncated file is invalid JSON that ends early, at the line and column of its end", () => {
    const full = '{\n  "steps": 10,\n  "seed": 3\n}\n'
    fc.assert(
      fc.property(fc.integer({ min: 1, max: full.trimEnd().length - 1 }), (cut) => {
        const text = full.slice(0, cut)
        const parsed = JsonText.parse(text)
        // Every proper prefix of an object is invalid JSON.
        expect(parsed._tag).toBe("invalid")
        if (parsed._tag !== "invalid") return
        const end = text.trimEnd()
        const line = end.split("\n").length
        const column = end.length - (end.lastIndexOf("\n") + 1) + 1
        expect(parsed.reason).toContain(`line ${line}, column ${column}`)
      }),
      { numRuns: 60 },
    )
    const file = configFile('{\n  "steps": 10,\n  "seed": 0')
    expect(refused(["train", "--config", file])).toMatch(
      /^pleat train: --config: ".*job\.json" is not valid JSON: it ends early at line 3, column 12 \(.+\); fix: write the settings as one JSON object/,
    )
  })

  test("a bad character is named at its line and column; an empty file and a non-object say so", () => {
    expect(refused(["train", "--config", configFile('{\n  "steps": 10,\n  "seed": tru}')])).toMatch(/is not valid JSON at line 3, column 14: unexpected token '\}'; fix: /)
    expect(refused(["train", "--config", configFile('{"steps" 10}')])).toContain("is not valid JSON at line 1, column 10:")
    expect(refused(["train", "--config", configFile("{'steps': 10}")])).toContain("is not valid JSON at line 1, column 2:")
    expect(refused(["verify", "--config", configFile("  \n")])).toContain("is empty, not JSON")
    expect(refused(["train", "--config", configFile("12")])).toContain("holds a number (12), not a JSON object")
    expect(refused(["train", "--config", configFile("[1]")])).toContain("holds an array, not a JSON object")
  })

  test("random damage to a valid file: invalid exactly when JSON.parse says so, always at a line and column, without V8's echo of the text", () => {
    const text = JSON.stringify({ steps: 10, seed: 3, order: "tp-cp-ep-dp-pp", dtype: "float64" }, null, 2)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: text.length - 1 }), fc.constantFrom("x", "}", ",", ":", "'", "]"), (at, c) => {
        const damaged = text.slice(0, at) + c + text.slice(at + 1)
        const parsed = JsonText.parse(damaged)
        let valid = true
        try {
          JSON.parse(damaged)
        } catch {
          valid = false
        }
        expect(parsed._tag).toBe(valid ? "json" : "invalid")
        if (parsed._tag !== "invalid") return
        expect(parsed.reason).toMatch(/line \d+, column \d+/)
        expect(parsed.reason.split("is not valid JSON")).toHaveLength(2)
      }),
      { numRuns: 200 },
    )
  })

  test("any JSON text parses to JSON.parse's value, with or without a byte-order mark before it", () => {
    fc.assert(
      fc.property(fc.json(), fc.boolean(), fc.constantFrom(0, 2, "\t"), (written, bom, indent) => {
        const text = JSON.stringify(JSON.parse(written), null, indent)
        const parsed = JsonText.parse(bom ? `\uFEFF${text}` : text)
        expect(parsed).toEqual({ _tag: "json", value: JSON.parse(text) })
      }),
      { numRuns: 300 },
    )
  })

  test("a key written twice in one object (at any depth) is refused, naming the key and the line and column of its second occurrence", () => {
    const key = fc.string({ maxLength: 6 })
    fc.assert(
      fc.property(fc.uniqueArray(key, { minLength: 1, maxLength: 6 }), fc.nat(), fc.nat(), fc.boolean(), (keys, pick, at, nested) => {
        const first = pick % keys.length
        const repeated = keys[first] as string
        const members = keys.map((k, i) => `${JSON.stringify(k)}: ${i}`)
        // Anywhere after its first occurrence.
        const position = first + 1 + (at % (members.length - first))
        members.splice(position, 0, `${JSON.stringify(repeated)}: "again"`)
        const object = `{\n  ${members.join(",\n  ")}\n}`
        const text = nested ? `{"outer": [1, ${object}], "outer2": {"outer": 2}}` : object
        const parsed = JsonText.parse(text)
        expect(parsed._tag).toBe("invalid")
        if (parsed._tag !== "invalid") return
        expect(parsed.reason).toContain(`has the key ${JSON.stringify(repeated)} twice in one object`)
        // The second occurrence: the member inserted.
        const offset = text.indexOf(`${JSON.stringify(repeated)}: "again"`)
        const before = text.slice(0, offset)
        expect(parsed.reason).toContain(`line ${before.split("\n").length}, column ${offset - before.lastIndexOf("\n")}`)
      }),
      { numRuns: 300 },
    )
    // The same key in different objects is no repeat.
    expect(JsonText.parse('{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}')._tag).toBe("json")
  })
})

describe("ranks one process hosts", () => {
  test("train and verify refuse a world above the backend's limit, naming it, before any work", () => {
    const degrees = ["--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
    for (const command of ["train", "verify"]) {
      expect(refused([command, "--world", "1000000", ...degrees])).toBe(
        `pleat ${command}: --world: 1000000 is more ranks than the local backend hosts in one process (at most 1024: every rank lives in this process); fix: use --world 1024 or less`,
      )
      expect(refused([command, "--world", "128", "--backend", "threads", ...degrees])).toContain(
        "--world: 128 is more ranks than the threads backend hosts in one process (at most 64: every rank lives in this process); fix: use --world 64 or less, or --backend local (up to 1024 ranks)",
      )
    }
    const file = configFile(JSON.stringify({ world: 4096 }))
    expect(refused(["train", "--config", file])).toContain(`"world" in ${file}: 4096 is more ranks than the local backend hosts`)
    // At the limit, the world passes this check (a cross-field check may still refuse it).
    expect(refused(["train", "--world", "1024", ...degrees])).not.toContain("more ranks than")
    // The help says the same limits.
    for (const command of ["train", "verify"]) {
      const io = memoryIo()
      expect(Cli.run([command, "--help"], io)).toBe(0)
      expect(io.out).toContain("one process hosts at most 1024 on local, 64 on threads")
    }
  })

  test("--workers belongs to the threads backends: elsewhere it is refused, naming the backend", () => {
    for (const command of ["train", "verify"]) {
      expect(refused([command, "--workers", "2"])).toBe(
        `pleat ${command}: --workers: 2 sets the worker threads of the threads backends, but the backend is local; fix: drop it, or add --backend threads`,
      )
      expect(refused([command, "--workers", "0", "--backend", "threads"])).toContain("--workers")
    }
    const file = configFile(JSON.stringify({ workers: 3, backend: "local-zero-copy" }))
    expect(refused(["train", "--config", file])).toContain(`"workers" in ${file}: 3 sets the worker threads of the threads backends, but the backend is local-zero-copy`)
  })
})

describe("interleaved pipelines", () => {
  test("a global batch whose micro-batches the interleaved schedule cannot run is refused before any work, naming --global-batch and two that run", () => {
    // The schedule's own rule (Megatron's): M >= pp, and M % pp is 0 or at least pp (microbatchGroupSize pp).
    const runs = (m: number, pp: number) => m >= pp && (m % pp === 0 || m % pp >= pp)
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 4 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 9 }), (pp, dp, microBatch, m) => {
        const argv = ["train", "--steps", "1", "--world", String(pp * dp), "--tp", "1", "--cp", "1", "--ep", "1", "--pp", String(pp), "--vpp", "2", "--layers", String(2 * pp)]
        const global = m * microBatch * dp
        const flags = [...argv, "--micro-batch", String(microBatch), "--global-batch", String(global)]
        if (runs(m, pp)) {
          expect(TrainOptions.resolve(flags.slice(1))).not.toBe("help")
          return
        }
        const line = refused(flags)
        expect(line).toContain(`pleat train: --global-batch: ${global} makes ${m} micro-batch`)
        expect(line).toContain("which the interleaved schedule of --vpp 2 cannot run")
        const suggested = [...line.matchAll(/--global-batch (\d+)/g)].map((x) => Number(x[1]))
        expect(suggested.length).toBeGreaterThan(0)
        for (const g of suggested) {
          expect(g % (microBatch * dp)).toBe(0)
          expect(runs(g / (microBatch * dp), pp)).toBe(true)
          expect(TrainOptions.resolve([...argv.slice(1), "--micro-batch", String(microBatch), "--global-batch", String(g)])).not.toBe("help")
        }
        // The nearest that run, one above and (where one runs) one below: none runs between them.
        const counts = suggested.map((g) => g / (microBatch * dp))
        expect(counts.filter((k) => k > m)).toHaveLength(1)
        expect(counts.filter((k) => k < m)).toHaveLength(Array.from({ length: m }, (_, k) => k).some((k) => k > 0 && runs(k, pp)) ? 1 : 0)
        for (let k = Math.min(...counts) + 1; k < Math.max(...counts); k++) if (k !== m) expect(runs(k, pp), `${k} micro-batches run`).toBe(false)
      }),
      { numRuns: 60 },
    )
  })
})
