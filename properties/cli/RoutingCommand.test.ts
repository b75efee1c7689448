// `pleat routing`: a recorded routing's tokens per expert, imbalance and agreement with another
// recording, exactly as counted from the files (hand-written files with known answers; the
// counts as a partition of every layer's T x K pairs; agreement 1 with itself, symmetric), a
// heatmap with one cell per layer and expert, and bad input refused with one line.
import { mkdirSync, writeFileSync } from "node:fs"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as RoutingStats from "../../src/moe/RoutingStats.js"
import * as Npy from "../../src/train/Npy.js"
import { fresh, mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"

const step = (n: number) => `step-${String(n).padStart(8, "0")}.npy`

/** A recording of hand-written steps [layers, tokens, k] (no routing.json, as Python may write). */
const written = (label: string, steps: ReadonlyArray<ReadonlyArray<number>>, shape: ReadonlyArray<number>): string => {
  const dir = fresh(label)
  steps.forEach((experts, i) => writeFileSync(path.join(dir, step(i + 1)), Npy.encodeInt32(Int32Array.from(experts), shape)))
  return dir
}

const lines = (out: string) =>
  out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))

describe("pleat routing", () => {
  test("counts, imbalance and agreement of hand-written files", async () => {
    // 2 layers, 4 tokens, top-2, experts 0..3.
    const a = written("routing-a", [[0, 1, 0, 2, 1, 0, 3, 2, /* layer 1 */ 1, 2, 1, 2, 1, 2, 1, 2]], [2, 4, 2])
    const b = written("routing-b", [[1, 0, 0, 3, 1, 0, 2, 3, /* layer 1 */ 1, 2, 1, 0, 3, 0, 1, 2]], [2, 4, 2])
    const r = await run(["routing", "--dir", a, "--compare", b, "--json"])
    expect(r.status, r.err).toBe(0)
    expect(lines(r.out)).toEqual([
      {
        step: 1,
        layers: [
          // layer 0: experts 0 x3, 1 x2, 2 x2, 3 x1 (mean 2); tokens 0, 2, 3 the same sets, token 1 shares one of two.
          { layer: 0, tokensPerExpert: [3, 2, 2, 1], imbalance: 1.5, same: 0.75, overlap: 7 / 8 },
          // layer 1: experts 1 and 2 x4 each (mean 2); tokens 0 and 3 the same, 1 shares one, 2 none.
          { layer: 1, tokensPerExpert: [0, 4, 4, 0], imbalance: 2, same: 0.5, overlap: 5 / 8 },
        ],
      },
    ])
    const text = await run(["routing", "--dir", a])
    expect(text.status).toBe(0)
    expect(text.out).toContain("MoE layers 0, 1, 4 experts, top-2, 4 tokens a step")
    expect(text.out).toContain("  layer 0: imbalance 1.500 (expert 0 3 tokens, expert 3 1)\n")
  })

  test("the counts partition each layer's pairs; agreement is 1 with itself and symmetric", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 2, max: 9 }), fc.integer(), (layers, tokens, experts, seed) => {
        const k = 1 + (Math.abs(seed) % Math.min(3, experts))
        let s = seed >>> 0 || 1
        const draw = () => {
          const out: Array<number> = []
          for (let t = 0; t < layers * tokens; t++) {
            const pool = Array.from({ length: experts }, (_, e) => e)
            for (let j = 0; j < k; j++) {
              s = (Math.imul(s, 1103515245) + 12345) >>> 0
              out.push(pool.splice(s % pool.length, 1)[0] as number)
            }
          }
          return out
        }
        const [x, y] = [draw(), draw()]
        for (let l = 0; l < layers; l++) {
          const counts = RoutingStats.tokensPerExpert(x, l, tokens, k, experts)
          expect(counts.reduce((p, q) => p + q, 0)).toBe(tokens * k)
          counts.forEach((n, e) => expect(n).toBe(x.slice(l * tokens * k, (l + 1) * tokens * k).filter((v) => v === e).length))
          expect(RoutingStats.imbalance(counts)).toBeGreaterThanOrEqual(1)
          expect(RoutingStats.agreement(x, x, l, tokens, k)).toEqual({ same: 1, overlap: 1 })
          expect(RoutingStats.agreement(x, y, l, tokens, k)).toEqual(RoutingStats.agreement(y, x, l, tokens, k))
        }
      }),
    )
  })

  test("reads pleat train's recording and draws a step", async () => {
    const dir = fresh("routing-train")
    const trained = await run(["train", ...mapping(4, 2, 1, 1, 2), "--layers", "2", "--steps", "3", "--log", "json", "--routing-record", dir])
    expect(trained.status, trained.err).toBe(0)
    const svg = path.join(fresh("routing-svg"), "loads.svg")
    const io = memoryIo()
    const status = await Cli.run(["routing", "--dir", dir, "--step", "2", "--svg", svg, "--json"], io)
    expect(status, io.err).toBe(0)
    const r = { out: io.out, err: io.err }
    const [only] = lines(r.out)
    expect(only.step).toBe(2)
    expect(only.layers.map((l: { layer: number }) => l.layer)).toEqual([0, 1])
    for (const l of only.layers) expect(l.tokensPerExpert.reduce((p: number, q: number) => p + q, 0)).toBe(8 * 16 * 2)
    const picture = io.files.get(svg) as string
    expect(picture.startsWith("<svg")).toBe(true)
    expect(picture.match(/<title>layer \d, expert \d: \d+ tokens<\/title>/g)).toHaveLength(2 * 8)
    expect(r.err).toBe(`picture: ${svg}\n`)
  }, 60_000)

  test("bad input is refused with one line", () => {
    const a = written("routing-bad-a", [[0, 1, 1, 0]], [1, 2, 2])
    expect(refused(["routing"])).toMatch(/--dir: \(not given\) is required/)
    expect(refused(["routing", "--dir", path.join(a, "none")])).toMatch(/--dir: .* is not a directory/)
    const empty = fresh("routing-empty")
    expect(refused(["routing", "--dir", empty])).toMatch(/holds no step files/)
    expect(refused(["routing", "--dir", a, "--step", "2"])).toMatch(/--step: 2 is not a step the recording holds \(1 to 1\)/)
    const wide = written("routing-bad-b", [[0, 1, 1, 0, 2, 3]], [1, 3, 2])
    expect(refused(["routing", "--dir", a, "--compare", wide])).toMatch(/--compare: .* is a routing of other tokens or layers \(2 tokens a step against 3\)/)
    const mixed = written("routing-mixed", [[0, 1, 1, 0]], [1, 2, 2])
    writeFileSync(path.join(mixed, step(2)), Npy.encodeInt32(Int32Array.of(0, 1, 1, 0, 2, 3), [1, 3, 2]))
    expect(refused(["routing", "--dir", mixed])).toMatch(/is not \[MoE layers, tokens, topk\] as step 1's \(1, 2, 2\)/)
    const twice = written("routing-twice", [[0, 0, 1, 0]], [1, 2, 2])
    expect(refused(["routing", "--dir", twice])).toMatch(/routes the token to this expert twice/)
    const folder = fresh("routing-folder")
    mkdirSync(path.join(folder, "out.svg"))
    expect(refused(["routing", "--dir", a, "--svg", path.join(folder, "out.svg")])).toMatch(/^pleat routing: --svg/)
  })
})
