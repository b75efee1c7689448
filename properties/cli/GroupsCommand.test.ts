// The `pleat groups` contract: JSON shape and content, exit statuses, one-line errors, the picture.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import { anyDegrees, factorized } from "../mapping/arbitraries.js"
import { type OracleInput, allOrders, coordsOf, groupsOf, isValid, sizesOf } from "../mapping/oracle.js"

const argsOf = (c: OracleInput, etp = true): Array<string> => [
  "groups",
  "--world",
  String(c.world),
  "--tp",
  String(c.tp),
  "--cp",
  String(c.cp),
  "--pp",
  String(c.pp),
  "--ep",
  String(c.ep),
  ...(etp ? ["--etp", String(c.etp)] : []),
  "--order",
  c.order.join("-"),
]

const runCli = (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = Cli.run(argv, io)
  return { status, out: io.out, err: io.err, files: io.files }
}

const familyKeys = ["tp", "cp", "dp", "pp", "dp-cp", "tp-cp", "tp-pp", "tp-dp", "tp-dp-cp", "etp", "ep", "edp", "etp-ep", "etp-ep-pp", "embedding"]

describe("pleat groups --json", () => {
  test("has exactly the contract's keys and the oracle's groups and coordinates", () => {
    fc.assert(
      fc.property(factorized(512).filter(isValid), (c) => {
        const { status, out, err } = runCli([...argsOf(c), "--json"])
        expect(status).toBe(0)
        expect(err).toBe("")
        const json = JSON.parse(out)
        expect(Object.keys(json)).toEqual(["world", "order", "sizes", "groups", "ranks"])
        expect(json.world).toBe(c.world)
        expect(json.order).toBe(c.order.join("-"))
        const dense = sizesOf(c, "dense")
        const expert = sizesOf(c, "expert")
        expect(json.sizes).toEqual({ tp: c.tp, cp: c.cp, dp: dense.dp, pp: c.pp, etp: c.etp, ep: c.ep, edp: expert.dp })
        expect(Object.keys(json.sizes)).toEqual(["tp", "cp", "dp", "pp", "etp", "ep", "edp"])
        expect(Object.keys(json.groups)).toEqual(familyKeys)
        expect(json.groups["tp-dp-cp"]).toEqual(groupsOf(c.world, c.order, dense, ["tp", "dp", "cp"]))
        expect(json.groups["etp-ep"]).toEqual(groupsOf(c.world, c.order, expert, ["tp", "ep"]))
        expect(json.ranks.length).toBe(c.world)
        json.ranks.forEach((r: Record<string, number>, rank: number) => {
          expect(Object.keys(r)).toEqual(["rank", "tp", "cp", "dp", "pp", "etp", "ep", "edp"])
          const d = coordsOf(rank, c.order, dense)
          const e = coordsOf(rank, c.order, expert)
          expect(r).toEqual({ rank, tp: d.tp, cp: d.cp, dp: d.dp, pp: d.pp, etp: e.tp, ep: e.ep, edp: e.dp })
        })
      }),
      { numRuns: 60 },
    )
  })

  test("without --etp, etp is tp and the sizes say so", () => {
    const { status, out } = runCli(["groups", "--world", "16", "--tp", "2", "--cp", "2", "--pp", "2", "--ep", "2", "--json"])
    expect(status).toBe(0)
    expect(JSON.parse(out).sizes).toEqual({ tp: 2, cp: 2, dp: 2, pp: 2, etp: 2, ep: 2, edp: 2 })
    const text = runCli(["groups", "--world", "16", "--tp", "2", "--cp", "2", "--pp", "2", "--ep", "2"])
    expect(text.out).toContain("etp 2 defaulted to tp")
  })
})

describe("pleat groups errors", () => {
  test("a configuration the oracle rejects exits 2 with one line naming the field and the fix", () => {
    const everyOrder = factorized(1024).chain((c) => fc.constantFrom(...allOrders).map((order) => ({ ...c, order })))
    fc.assert(
      fc.property(
        fc.oneof(anyDegrees, everyOrder).filter((c) => !isValid(c)),
        fc.boolean(),
        (c, json) => {
          const { status, out, err } = runCli([...argsOf(c), ...(json ? ["--json"] : [])])
          expect(status).toBe(2)
          expect(out).toBe("")
          expect(err.endsWith("\n")).toBe(true)
          expect(err.trimEnd().split("\n").length).toBe(1)
          const field = c.world % (c.tp * c.cp * c.pp) !== 0 || c.world % (c.etp * c.ep * c.pp) !== 0 ? "world" : "order"
          expect(err).toContain(`${field}: `)
          expect(err).toContain("fix: ")
          expect(err).not.toMatch(/\bat .*\.(ts|js):\d+/)
        },
      ),
      { numRuns: 200 },
    )
  })

  test("bad flags exit 2 with one line naming the flag", () => {
    const cases: Array<[Array<string>, string]> = [
      [["--world", "abc"], "world"],
      [["--world", "0"], "world"],
      [["--world", "16", "--tp", "-2"], "tp"],
      [["--world", "16", "--tp", "1.5"], "tp"],
      [["--world", "16", "--cp"], "cp"],
      [["--world", "16", "--pp", "2", "--pp", "2"], "pp"],
      [["--world", "16", "--bogus", "1"], "--bogus"],
      [["--world", "16", "extra"], "extra"],
      [["--tp", "2"], "world"],
      [["--world", "16", "--vpp", "2"], "vpp"],
      [["--world", "16", "--order", "tp-cp-ep-dp-xx"], "order"],
      [["--world", "16", "--json=yes"], "json"],
    ]
    for (const [args, field] of cases) {
      const { status, out, err } = runCli(["groups", ...args])
      expect(status, args.join(" ")).toBe(2)
      expect(out).toBe("")
      expect(err.trimEnd().split("\n").length).toBe(1)
      expect(err).toContain(field)
    }
  })

  test("an unknown command exits 2; help exits 0", () => {
    expect(runCli(["nonsense"]).status).toBe(2)
    expect(runCli(["--help"]).status).toBe(0)
    expect(runCli(["groups", "--help"]).out).toContain("usage: pleat groups")
  })
})

describe("pleat groups --svg", () => {
  test("draws one pipeline stage twice: a cell per rank of the stage in each panel", () => {
    fc.assert(
      fc.property(factorized(256).filter(isValid), (c) => {
        const { status, files } = runCli([...argsOf(c), "--json", "--svg", "fold.svg"])
        expect(status).toBe(0)
        const svg = files.get("fold.svg") ?? ""
        expect(svg.startsWith("<svg")).toBe(true)
        const cells = svg.match(/<rect x=/g) ?? []
        expect(cells.length).toBe((2 * c.world) / c.pp)
        for (let rank = 0; rank < c.world; rank++) {
          const inStage0 = coordsOf(rank, c.order, sizesOf(c, "dense")).pp === 0
          expect(svg.includes(`<title>rank ${rank}:`)).toBe(inStage0)
        }
      }),
      { numRuns: 30 },
    )
  })
})
