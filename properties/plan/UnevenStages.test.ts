// pleat plan with uneven pipeline stages: a pipeline size that does not divide the layers is
// weighed only with --uneven-stages or a fixed --pp (so the paper's models plan as before), with
// the split training uses (StageLayers.unevenEnds: middle ranks ceil(L/pp), the rest to the ends,
// checked by pipeline/Partition); and the split it
// prints is one `pleat train` accepts and trains.
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Result from "effect/Result"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as Partition from "../../src/pipeline/Partition.js"
import * as StageLayers from "../../src/plan/StageLayers.js"

interface Candidate {
  readonly pp: number
  readonly vpp: number
  readonly firstStageLayers?: number
  readonly lastStageLayers?: number
  readonly stepSeconds: number
}

const plan = (args: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = Cli.run(["plan", "--json", "--top", "200", ...args], io)
  expect(status, io.err).toBe(0)
  return JSON.parse(io.out) as { candidates: Array<Candidate> }
}

describe("uneven pipeline stages in pleat plan", () => {
  test("the split: valid for training, middle ranks ceil(L/pp) where the ends can take the rest, the first end the smaller", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 130 }), fc.integer({ min: 2, max: 64 }), (layers, pp) => {
        const ends = StageLayers.unevenEnds(layers, pp)
        if (layers % pp === 0) {
          expect(ends).toBeUndefined()
          return
        }
        if (ends === undefined) {
          // Only where even a floor share leaves no layer for some middle rank.
          expect(Math.floor(layers / pp) < 1 || pp > layers).toBe(true)
          return
        }
        expect(Result.isSuccess(Partition.validate({ layers, pp, ...ends }))).toBe(true)
        expect(ends.firstStageLayers).toBeLessThanOrEqual(ends.lastStageLayers)
        const split = StageLayers.of({ layers, pp, vpp: 1, ...ends })
        expect(split.first + split.last + (pp - 2) * split.middle).toBe(layers)
        if (pp > 2 && layers - (pp - 2) * Math.ceil(layers / pp) >= 0) expect(split.middle).toBe(Math.ceil(layers / pp))
      }),
      { numRuns: 500 },
    )
    expect(StageLayers.unevenEnds(61, 16)).toEqual({ firstStageLayers: 2, lastStageLayers: 3 })
  })

  test("weighed with --uneven-stages or a fixed --pp only, with the split training uses", () => {
    const base = ["--model", "deepseek-v3-style", "--gpus", "512", "--global-batch", "2048"]
    // 61 layers: without the flag only pp 1 (and 61) divide them.
    expect(plan(base).candidates.every((c) => c.firstStageLayers === undefined && 61 % c.pp === 0)).toBe(true)
    const uneven = plan([...base, "--uneven-stages"]).candidates
    const split = uneven.filter((c) => c.firstStageLayers !== undefined)
    expect(split.length).toBeGreaterThan(0)
    for (const c of split) {
      expect(61 % c.pp).not.toBe(0)
      expect(c.vpp).toBe(1)
      expect({ firstStageLayers: c.firstStageLayers, lastStageLayers: c.lastStageLayers }).toEqual(StageLayers.unevenEnds(61, c.pp))
    }
    const fixed = plan([...base, "--pp", "16", "--tp", "4", "--ep", "8"]).candidates
    expect(fixed.length).toBeGreaterThan(0)
    for (const c of fixed) expect([c.pp, c.firstStageLayers, c.lastStageLayers]).toEqual([16, 2, 3])
  })

  test("the split it prints trains (pleat train takes the same flags)", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-uneven-plan-"))
    const file = path.join(dir, "five.json")
    writeFileSync(file, JSON.stringify({ name: "five", vocab: 32, hidden: 32, layers: 5, heads: 4, kvHeads: 2, experts: 8, topk: 2, moeFfn: 32, ffn: 64, seq: 16 }))
    const [best] = plan(["--model", file, "--gpus", "4", "--global-batch", "8", "--pp", "4", "--tp", "1", "--cp", "1", "--ep", "1"]).candidates
    expect(best).toMatchObject({ pp: 4, firstStageLayers: 0, lastStageLayers: 1 })
    const io = memoryIo()
    const flags = ["--first-stage-layers", String(best?.firstStageLayers), "--last-stage-layers", String(best?.lastStageLayers)]
    const status = await Cli.run(["train", "--world", "4", "--tp", "1", "--cp", "1", "--pp", "4", "--ep", "1", "--layers", "5", "--steps", "1", ...flags], io)
    expect(status, io.err).toBe(0)
    expect(io.out).toContain("pp 4 with layers 0/2/2/1 by pp rank")
  }, 60_000)
})
