// The `pleat moe replay` contract: exactly the output keys in order, values equal to the
// from-definition oracle on random cases (every score function, groups, capacity regime,
// padding, T = 0, H = 0), malformed cases exit 2 with one line naming the field, and the real
// process reads a file and stdin.
import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as MoeCommand from "../../src/cli/MoeCommand.js"
import { routingCase } from "../moe/arbitraries.js"
import { type OracleCase, replay } from "../moe/oracle.js"
import { pleatMain } from "../support/pleatProcess.js"

const outputKeys = ["probs", "routingMap", "tokensPerExpert", "sortedIndices", "permuted", "unpermuted", "unpermutedWeighted", "auxLoss", "zLoss"]

/** Runs `pleat moe replay case.json` with the case text served from memory. */
const replayText = (text: string, file = "case.json") => {
  const io = memoryIo()
  let status: number
  try {
    status = MoeCommand.runWith(["replay", file], io, (f) => {
      if (f !== file) throw Object.assign(new Error("no such file"), { code: "ENOENT" })
      return text
    })
  } catch (error) {
    // What Cli.run does with a ConfigError (checked end to end below).
    io.stderr(`pleat moe: ${(error as Error).message}\n`)
    status = 2
  }
  return { status, out: io.out, err: io.err }
}

/** Nested arrays equal in structure; numbers within 1e-12 relative (1e-12 absolute near 0). */
const approx = (actual: unknown, expected: unknown, where = "$"): void => {
  if (typeof expected === "number") {
    expect(typeof actual, where).toBe("number")
    const a = actual as number
    expect(Math.abs(a - expected) <= 1e-12 * Math.max(1, Math.abs(a), Math.abs(expected)), `${where}: ${a} vs ${expected}`).toBe(true)
    return
  }
  expect(Array.isArray(actual), where).toBe(true)
  const a = actual as Array<unknown>
  const e = expected as Array<unknown>
  expect(a.length, `${where}.length`).toBe(e.length)
  e.forEach((x, i) => approx(a[i], x, `${where}[${i}]`))
}

const caseText = (c: OracleCase) => JSON.stringify(c)

describe("pleat moe replay", () => {
  test("prints exactly the contract's keys, in order, with the oracle's values", () => {
    fc.assert(
      fc.property(routingCase(6, 8), (c) => {
        const { status, out, err } = replayText(caseText(c))
        expect(err).toBe("")
        expect(status).toBe(0)
        expect(out.endsWith("\n")).toBe(true)
        expect(out.trimEnd().split("\n")).toHaveLength(1)
        const json = JSON.parse(out)
        expect(Object.keys(json)).toEqual(outputKeys)
        const o = replay(c)
        expect(json.routingMap).toEqual(o.routingMap)
        expect(json.tokensPerExpert).toEqual(o.tokensPerExpert)
        expect(json.sortedIndices).toEqual(o.sortedIndices)
        for (const key of ["probs", "permuted", "unpermuted", "unpermutedWeighted", "auxLoss", "zLoss"] as const) approx(json[key], o[key], key)
      }),
      { numRuns: 300 },
    )
  })

  test("edge cases: T = 0, H = 0, the worked example, padding, capacity above T", () => {
    const base = {
      numExperts: 4,
      topk: 2,
      scoreFunction: "softmax",
      preSoftmax: false,
      capacityFactor: null,
      dropPolicy: "probs",
      padToCapacity: false,
      numGroups: null,
      groupTopk: null,
      scalingFactor: null,
      expertBias: null,
    }
    const empty = JSON.parse(replayText(JSON.stringify({ ...base, logits: [], tokens: [] })).out)
    expect(empty).toEqual({
      probs: [],
      routingMap: [],
      tokensPerExpert: [0, 0, 0, 0],
      sortedIndices: [],
      permuted: [],
      unpermuted: [],
      unpermutedWeighted: [],
      auxLoss: 0,
      zLoss: 0,
    })
    const noHidden = JSON.parse(replayText(JSON.stringify({ ...base, logits: [[1, 0, 0, 0]], tokens: [[]] })).out)
    expect(noHidden.permuted).toEqual([[], []])
    expect(noHidden.unpermuted).toEqual([[]])
    // Worked example 2.3: routing t0 -> {0,2}, t1 -> {1,3}, t2 -> {0,1}.
    const logits = [
      [2, 0, 1, -5],
      [-5, 2, 0, 1],
      [3, 3, 0, 0],
    ]
    const tokens = [
      [1, 2],
      [3, 4],
      [5, 6],
    ]
    const worked = JSON.parse(replayText(JSON.stringify({ ...base, logits, tokens })).out)
    expect(worked.sortedIndices).toEqual([0, 2, 1, 2, 0, 1])
    expect(worked.tokensPerExpert).toEqual([2, 2, 1, 1])
    expect(worked.unpermuted).toEqual([
      [2, 4],
      [6, 8],
      [10, 12],
    ])
    approx(worked.unpermutedWeighted, tokens)
    // T*K/E = 1.5, factor 2: C = 3 = T. Padding fills each expert to 3 rows with prob-0 fillers.
    const padded = JSON.parse(replayText(JSON.stringify({ ...base, logits, tokens, capacityFactor: 2, padToCapacity: true })).out)
    expect(padded.tokensPerExpert).toEqual([3, 3, 3, 3])
    expect(padded.sortedIndices).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    expect(padded.probs[2][2]).toBe(0)
    expect(padded.unpermuted).toEqual([
      [4, 8],
      [12, 16],
      [20, 24],
    ])
    approx(padded.unpermutedWeighted, tokens)
    // C = ceil(1.5 * 0.5) = 1: one row per expert; then C > T with padding: every token everywhere.
    expect(JSON.parse(replayText(JSON.stringify({ ...base, logits, tokens, capacityFactor: 0.5, padToCapacity: true })).out).tokensPerExpert).toEqual([1, 1, 1, 1])
    expect(JSON.parse(replayText(JSON.stringify({ ...base, logits, tokens, capacityFactor: 9, padToCapacity: true })).out).tokensPerExpert).toEqual([3, 3, 3, 3])
  })
})

/** A valid case to break, with E >= 3 so every group mistake can be made. */
const valid = routingCase(4, 8).filter((c) => c.numExperts >= 3 && c.logits.length >= 1 && (c.tokens[0]?.length ?? 0) >= 1)

type Mutation = { readonly field: string; readonly apply: (c: Record<string, unknown>) => string }
const set =
  (key: string, value: unknown): Mutation["apply"] =>
  (c) =>
    JSON.stringify({ ...c, [key]: value })
const keys = [
  "numExperts",
  "topk",
  "scoreFunction",
  "preSoftmax",
  "capacityFactor",
  "dropPolicy",
  "padToCapacity",
  "numGroups",
  "groupTopk",
  "scalingFactor",
  "expertBias",
  "logits",
  "tokens",
]

const mutations = (c: OracleCase): Array<Mutation> => {
  const e = c.numExperts
  const inf =
    (key: string, value: unknown): Mutation["apply"] =>
    (x) =>
      JSON.stringify({ ...x, [key]: value }).replace('"__INF__"', "1e999")
  return [
    ...keys.map((k) => ({ field: k, apply: (x: Record<string, unknown>) => JSON.stringify({ ...x, [k]: undefined }) })),
    { field: "numExperts", apply: set("numExperts", "8") },
    { field: "numExperts", apply: set("numExperts", 0) },
    { field: "topk", apply: set("topk", 2.5) },
    { field: "topk", apply: set("topk", 0) },
    { field: "topk", apply: set("topk", e + 1) },
    { field: "scoreFunction", apply: set("scoreFunction", "relu") },
    { field: "scoreFunction", apply: set("scoreFunction", 1) },
    { field: "preSoftmax", apply: set("preSoftmax", 1) },
    { field: "capacityFactor", apply: set("capacityFactor", "1") },
    { field: "capacityFactor", apply: inf("capacityFactor", "__INF__") },
    { field: "dropPolicy", apply: set("dropPolicy", "random") },
    { field: "padToCapacity", apply: set("padToCapacity", "yes") },
    { field: "numGroups", apply: (x) => JSON.stringify({ ...x, numGroups: e + 1, groupTopk: 1 }) },
    { field: "numGroups", apply: (x) => JSON.stringify({ ...x, numGroups: 1.5, groupTopk: 1 }) },
    { field: "groupTopk", apply: (x) => JSON.stringify({ ...x, numGroups: e, groupTopk: e + 1, topk: 1 }) },
    { field: "groupTopk", apply: (x) => JSON.stringify({ ...x, numGroups: e, groupTopk: e - 1, topk: 1 }) },
    { field: "groupTopk", apply: (x) => JSON.stringify({ ...x, numGroups: e, groupTopk: null }) },
    { field: "numGroups", apply: (x) => JSON.stringify({ ...x, numGroups: null, groupTopk: 1 }) },
    { field: "groupTopk", apply: (x) => JSON.stringify({ ...x, numGroups: e, groupTopk: 1, topk: 2 }) },
    { field: "scalingFactor", apply: inf("scalingFactor", "__INF__") },
    { field: "scalingFactor", apply: set("scalingFactor", [1]) },
    { field: "expertBias", apply: set("expertBias", new Array(e + 1).fill(0)) },
    { field: "expertBias", apply: set("expertBias", 0) },
    { field: "expertBias[0]", apply: set("expertBias", ["a", ...new Array(e - 1).fill(0)]) },
    { field: "logits", apply: set("logits", { a: 1 }) },
    { field: "logits[0]", apply: (x) => JSON.stringify({ ...x, logits: [[...(c.logits[0] ?? []), 0], ...c.logits.slice(1)] }) },
    { field: "logits[0][0]", apply: (x) => JSON.stringify({ ...x, logits: [["__INF__", ...(c.logits[0] ?? []).slice(1)], ...c.logits.slice(1)] }).replace('"__INF__"', "-1e999") },
    { field: "logits[0][0]", apply: (x) => JSON.stringify({ ...x, logits: [[null, ...(c.logits[0] ?? []).slice(1)], ...c.logits.slice(1)] }) },
    { field: "tokens", apply: (x) => JSON.stringify({ ...x, tokens: [...c.tokens, c.tokens[0]] }) },
    { field: `tokens[${c.tokens.length}]`, apply: (x) => JSON.stringify({ ...x, logits: [...c.logits, c.logits[0]], tokens: [...c.tokens, [...(c.tokens[0] ?? []), 1]] }) },
    { field: "tokens[0]", apply: set("tokens", [5, ...c.tokens.slice(1)]) },
    { field: "case", apply: (x) => JSON.stringify(x).slice(0, -1) },
    { field: "topK", apply: (x) => JSON.stringify({ ...x, topK: 1 }) },
    { field: "logits[0][0]", apply: (x) => JSON.stringify({ ...x, logits: [[1e200, ...(c.logits[0] ?? []).slice(1)], ...c.logits.slice(1)] }) },
    { field: "case", apply: () => "[1, 2]" },
    { field: "case", apply: () => "null" },
  ]
}

describe("pleat moe replay errors", () => {
  test("a malformed case exits 2 with one line naming the field, no output", () => {
    fc.assert(
      fc.property(valid, fc.nat(), (c, pick) => {
        const all = mutations(c)
        const m = all[pick % all.length] as Mutation
        const { status, out, err } = replayText(m.apply(c as unknown as Record<string, unknown>))
        expect(status, err).toBe(2)
        expect(out).toBe("")
        expect(err.endsWith("\n")).toBe(true)
        expect(err.trimEnd().split("\n")).toHaveLength(1)
        expect(err.startsWith(`pleat moe: ${m.field}: `), `${m.field} <- ${err}`).toBe(true)
        expect(err).toContain("; fix: ")
      }),
      { numRuns: 400 },
    )
  })

  test("through Cli.run: status 2 and one line for arguments, files and JSON; help exits 0", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-moe-"))
    const bad = path.join(dir, "bad.json")
    writeFileSync(bad, "{ not json")
    const cases: Array<[Array<string>, string]> = [
      [["moe"], "subcommand"],
      [["moe", "draw"], "subcommand"],
      [["moe", "replay"], "case"],
      [["moe", "replay", "a.json", "b.json"], "case"],
      [["moe", "replay", "--json", "a.json"], "arguments"],
      [["moe", "replay", path.join(dir, "missing.json")], "case"],
      [["moe", "replay", bad], "case"],
    ]
    for (const [argv, field] of cases) {
      const io = memoryIo()
      expect(Cli.run(argv, io), argv.join(" ")).toBe(2)
      expect(io.out).toBe("")
      expect(io.err.trimEnd().split("\n")).toHaveLength(1)
      expect(io.err.startsWith(`pleat moe: ${field}: `), io.err).toBe(true)
    }
    for (const argv of [
      ["moe", "--help"],
      ["moe", "replay", "--help"],
    ]) {
      const io = memoryIo()
      expect(Cli.run(argv, io)).toBe(0)
      expect(io.out).toContain("usage: pleat moe replay")
    }
    const io = memoryIo()
    Cli.run(["--help"], io)
    expect(io.out).toContain("moe")
  })
})

describe("pleat moe replay refuses what it cannot answer", () => {
  const knownKeys = new Set(keys)

  test("a key a case does not have: exit 2 naming the key and its value, suggesting the nearest key", () => {
    const typo = fc
      .constantFrom(...keys)
      .chain((k) =>
        fc
          .integer({ min: 0, max: k.length - 1 })
          .map((i) => ({ k, typo: k.slice(0, i) + (k[i] === k[i]?.toUpperCase() ? (k[i] ?? "").toLowerCase() : (k[i] ?? "").toUpperCase()) + k.slice(i + 1) })),
      )
    fc.assert(
      fc.property(valid, typo, fc.integer({ min: -5, max: 5 }), (c, { k, typo }, value) => {
        const { status, out, err } = replayText(JSON.stringify({ ...c, [typo]: value }))
        expect(status, err).toBe(2)
        expect(out).toBe("")
        expect(err).toBe(`pleat moe: ${typo}: ${value} is given under a key a case does not have; fix: did you mean "${k}"?\n`)
      }),
      { numRuns: 60 },
    )
    fc.assert(
      fc.property(
        valid,
        fc.uniqueArray(
          fc.stringMatching(/^[a-z]{1,12}$/).filter((k) => !knownKeys.has(k)),
          { minLength: 1, maxLength: 3 },
        ),
        (c, extra) => {
          const { status, out, err } = replayText(JSON.stringify({ ...c, ...Object.fromEntries(extra.map((k) => [k, [1, 2]])) }))
          expect(status, err).toBe(2)
          expect(out).toBe("")
          expect(err.trimEnd().split("\n")).toHaveLength(1)
          for (const k of extra) expect(err).toContain(`${k}: [1,2] is given under a key a case does not have; fix: `)
        },
      ),
      { numRuns: 60 },
    )
  })

  test("a finite case whose z-loss overflows float64 is refused naming the logit (never printed as null); below the bound it prints", () => {
    fc.assert(
      fc.property(valid, fc.nat(), fc.nat(), fc.boolean(), (c, row, col, negativeRow) => {
        const t = row % c.logits.length
        const e = col % c.numExperts
        // One large positive logit overflows its row's log-sum-exp; a large negative one only
        // when its whole row is (else the row's other logits dominate).
        const at = (big: number) => ({
          ...c,
          logits: c.logits.map((r, i) => (i !== t ? r : r.map((x, j) => (negativeRow ? -big : j === e ? big : x)))),
        })
        const named = negativeRow ? `logits[${t}][0]: -1e+200` : `logits[${t}][${e}]: 1e+200`
        const refusedRun = replayText(JSON.stringify(at(1e200)))
        expect(refusedRun.status, refusedRun.err).toBe(2)
        expect(refusedRun.out).toBe("")
        expect(refusedRun.err).toBe(
          `pleat moe: ${named} makes zLoss overflow float64 (it squares each row's log-sum-exp; JSON cannot carry Infinity); fix: give logits below 1e154 in magnitude\n`,
        )
        const printed = replayText(JSON.stringify(at(1e150)))
        expect(printed.status, printed.err).toBe(0)
        expect(printed.out).not.toContain("null")
        expect(Number.isFinite(JSON.parse(printed.out).zLoss)).toBe(true)
      }),
      { numRuns: 60 },
    )
  })

  test("sums of tokens that overflow name the token and the output; an infinite input names its field and index", () => {
    const base = {
      numExperts: 2,
      topk: 2,
      scoreFunction: "softmax",
      preSoftmax: true,
      capacityFactor: null,
      dropPolicy: "probs",
      padToCapacity: false,
      numGroups: null,
      groupTopk: null,
      scalingFactor: null,
      expertBias: null,
      logits: [[1, 0]],
      tokens: [[1, 1.5e308]],
    }
    const sum = replayText(JSON.stringify(base))
    expect(sum.status).toBe(2)
    expect(sum.err).toBe(
      "pleat moe: tokens[0][1]: 1.5e+308 makes unpermuted[0][1] overflow float64 (it sums the token's routed copies; JSON cannot carry Infinity); fix: give tokens whose sums over topk copies stay below 1.8e308 in magnitude\n",
    )
    // One copy per token: the same token is finite all the way through.
    expect(replayText(JSON.stringify({ ...base, topk: 1 })).status).toBe(0)
    const inf = replayText(JSON.stringify(base).replace("1.5e+308", "1e999"))
    expect(inf.err).toBe("pleat moe: tokens[0][1]: Infinity is not a finite number; fix: give finite numbers\n")
  })
})

describe("pleat moe replay as a process", () => {
  const root = path.resolve(import.meta.dirname, "../..")
  const pleat = (args: ReadonlyArray<string>, input?: string) =>
    spawnSync(process.execPath, [pleatMain, ...args], { cwd: root, encoding: "utf8", ...(input === undefined ? {} : { input }) })

  test("reads a file and stdin; a malformed case is status 2 with one line", () => {
    const c = {
      numExperts: 4,
      topk: 2,
      scoreFunction: "sigmoid",
      preSoftmax: false,
      capacityFactor: 1,
      dropPolicy: "position",
      padToCapacity: true,
      numGroups: 2,
      groupTopk: 1,
      scalingFactor: 2.5,
      expertBias: [0, 0.1, 0, 0],
      logits: [
        [1, 2, 3, 4],
        [0, 0, 0, 0],
      ],
      tokens: [[1], [2]],
    }
    const file = path.join(mkdtempSync(path.join(tmpdir(), "pleat-moe-")), "case.json")
    writeFileSync(file, JSON.stringify(c))
    const fromFile = pleat(["moe", "replay", file])
    expect(fromFile.status).toBe(0)
    const o = replay(c as OracleCase)
    const json = JSON.parse(fromFile.stdout)
    expect(json.routingMap).toEqual(o.routingMap)
    approx(json.probs, o.probs)
    const fromStdin = pleat(["moe", "replay", "-"], JSON.stringify({ ...c, topk: 9 }))
    expect(fromStdin.status).toBe(2)
    expect(fromStdin.stdout).toBe("")
    expect(fromStdin.stderr).toBe("pleat moe: topk: 9 is larger than numExperts 4; fix: use topk between 1 and 4\n")
  })
})
