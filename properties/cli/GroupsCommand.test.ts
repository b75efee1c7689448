// The `pleat groups` contract: JSON shape and content, exit statuses, one-line errors, the picture;
// the largest world it lists, and --svg paths checked before any work (groups and demo).
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
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

describe("what pleat groups and pleat demo will attempt", () => {
  test("a world above the 65536 ranks groups lists exits 2 naming the limit, before any work; 65536 itself lists every rank", () => {
    for (const world of [131072, 1 << 22]) {
      for (const json of [[], ["--json"]]) {
        const { status, out, err, files } = runCli(["groups", "--world", String(world), ...json, "--svg", "big.svg"])
        expect(status).toBe(2)
        expect(out).toBe("")
        expect(files.size).toBe(0)
        expect(err).toBe(
          `pleat groups: world: ${world} is more ranks than pleat groups lists (at most 65536: it prints every rank, and larger worlds take from seconds to minutes and up to gigabytes of memory); fix: use a world of at most 65536; the same degrees on a smaller world show the same pattern\n`,
        )
      }
    }
    const { status, out } = runCli(["groups", "--world", "65536", "--tp", "8", "--pp", "4", "--ep", "16", "--etp", "1", "--json"])
    expect(status).toBe(0)
    expect(JSON.parse(out).ranks).toHaveLength(65536)
  }, 60_000)

  test("an --svg path that cannot be a written file exits 2 with one line naming --svg and the path, before anything is printed", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-svg-"))
    const file = path.join(dir, "notes.txt")
    writeFileSync(file, "keep me")
    const cases: Array<[string, string]> = [
      [dir, "is a directory"],
      [`${path.join(dir, "new")}/`, "names a directory (it ends with a separator)"],
      [path.join(file, "fold.svg"), `cannot be written (${file} is a file, not a directory)`],
      [path.join(file, "deeper", "fold.svg"), `cannot be written (${file} is a file, not a directory)`],
      ["/proc/fold.svg", "cannot be written (/proc is on the proc pseudo-file system)"],
      ["/sys/fold.svg", "cannot be written (/sys is on the sysfs pseudo-file system)"],
    ]
    for (const [target, reason] of cases) {
      for (const argv of [
        ["groups", "--world", "16", "--tp", "2", "--svg", target],
        ["groups", "--world", "16", "--json", "--svg", target],
        ["demo", "--svg", target],
      ]) {
        const { status, out, err, files } = runCli(argv)
        expect(status, argv.join(" ")).toBe(2)
        expect(out).toBe("")
        expect(files.size).toBe(0)
        expect(err).toBe(`pleat ${argv[0]}: --svg: ${JSON.stringify(target)} ${reason}; fix: pass the path of a file in a directory you can write\n`)
      }
    }
    // A file in folders still to be created is fine (they are made when the picture is written).
    const fine = path.join(dir, "a", "b", "fold.svg")
    expect(runCli(["groups", "--world", "16", "--svg", fine]).files.has(fine)).toBe(true)
    expect(runCli(["demo", "--svg", fine]).files.has(fine)).toBe(true)
  })

  test("a write that fails after the checks is still one line naming --svg, never a stack", () => {
    const io = memoryIo()
    const failing = {
      ...io,
      writeFile: () => {
        throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" })
      },
    }
    expect(Cli.run(["groups", "--world", "16", "--svg", "fold.svg"], failing)).toBe(2)
    expect(io.err).toBe('pleat groups: --svg: "fold.svg" cannot be written (ENOSPC); fix: pass the path of a file in a directory you can write\n')
  })
})
