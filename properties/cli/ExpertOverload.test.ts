// The EP overload factor (Megatron-Core's): per MoE layer, the busiest expert-parallel rank's
// routed rows over its EP group's mean, per EP group and micro-batch, reported by pleat train as
// each layer's mean and max (`moe[].overload` in the step lines). Checked exactly: a replayed
// routing (--routing-replay) sends every token of micro-batch j to experts that depend only on j,
// so under any folded mapping every EP group's micro-batch j loads its ranks as the experts'
// blocks say, and the factors follow by hand. `pleat routing --ep N` gives the same factor for a
// recording's whole step.
import { writeFileSync } from "node:fs"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Npy from "../../src/train/Npy.js"
import { fresh, mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"

const experts = 8
const seq = 16
const globalBatch = 8

/** Micro-batch j's pair of experts: an even j's two neighbours, an odd j's two halves apart. */
const pairOf = (j: number): readonly [number, number] => (j % 2 === 0 ? [0, 1] : [0, experts / 2])

/** The factor of every token choosing `pair` under EP `ep`: the busiest rank's pairs over the mean rank's, counted here by rank. */
const byHand = (pair: ReadonlyArray<number>, ep: number): number => {
  const block = experts / ep
  const loads = Array.from({ length: ep }, (_, r) => pair.filter((e) => Math.floor(e / block) === r).length)
  return Math.max(...loads) / (pair.length / ep)
}

/** A replay directory of `steps` step files: sample i of a step (dp rank d, micro-batch j) routed to pairOf(j). */
const replayDir = (layers: number, dp: number, microBatch: number, steps: number): string => {
  const dir = fresh("overload-replay")
  const perRank = globalBatch / dp
  const data = new Int32Array(layers * globalBatch * seq * 2)
  for (let l = 0; l < layers; l++) {
    for (let i = 0; i < globalBatch; i++) {
      const j = Math.floor((i % perRank) / microBatch)
      for (let s = 0; s < seq; s++) data.set(pairOf(j), ((l * globalBatch + i) * seq + s) * 2)
    }
  }
  const manifest = { format: "pleat-routing", version: 1, numExperts: experts, topk: 2, seq, globalBatch, layers: Array.from({ length: layers }, (_, l) => l) }
  writeFileSync(path.join(dir, "routing.json"), JSON.stringify(manifest))
  for (let step = 1; step <= steps; step++) writeFileSync(path.join(dir, `step-${String(step).padStart(8, "0")}.npy`), Npy.encodeInt32(data, [layers, globalBatch * seq, 2]))
  return dir
}

/**
 * Folded mappings with their dp and ep (world, tp, cp, pp, ep, etp and extras), and the
 * micro-batch sizes they run (the interleaved schedule needs at least pp micro-batches a step).
 */
const mappings: ReadonlyArray<{ readonly flags: ReadonlyArray<string>; readonly dp: number; readonly ep: number; readonly microBatches: ReadonlyArray<number> }> = [
  { flags: mapping(8, 2, 1, 1, 4), dp: 4, ep: 4, microBatches: [1, 2] },
  { flags: mapping(8, 1, 2, 1, 8), dp: 4, ep: 8, microBatches: [1, 2] },
  { flags: mapping(8, 2, 2, 2, 2), dp: 1, ep: 2, microBatches: [1, 2] },
  { flags: [...mapping(8, 1, 1, 2, 2, 2), "--vpp", "2"], dp: 4, ep: 2, microBatches: [1] },
  { flags: [...mapping(4, 1, 2, 1, 4), "--dispatcher", "allgather"], dp: 2, ep: 4, microBatches: [1, 2] },
  { flags: mapping(4, 2, 1, 1, 1, 2), dp: 2, ep: 1, microBatches: [1, 2] },
  { flags: mapping(1, 1, 1, 1, 1), dp: 1, ep: 1, microBatches: [1, 2] },
]

interface Overload {
  readonly mean: number
  readonly max: number
}

/** The step lines' per-layer overload factors. */
const overloads = (out: string): Array<Array<{ readonly layer: number; readonly overload?: Overload }>> =>
  out
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line))
    .filter((r) => r.msg === "step")
    .map((r) => r.moe)

describe("the EP overload factor", () => {
  test("equals the hand count of a replayed routing under any folded mapping", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...mappings).chain((m) => fc.tuple(fc.constant(m), fc.constantFrom(...m.microBatches))),
        fc.boolean(),
        async ([m, microBatch], mtp) => {
          const microBatches = globalBatch / (m.dp * microBatch)
          // With MTP its layer's router is the file's last MoE layer (routing.json names it).
          const layers = mtp ? 5 : 4
          const dir = replayDir(layers, m.dp, microBatch, 2)
          const flags = [...m.flags, "--layers", "4", "--steps", "2", "--micro-batch", String(microBatch), "--log", "json", "--routing-replay", dir]
          const r = await run(["train", ...flags, ...(mtp ? ["--mtp-num-layers", "1"] : [])])
          expect(r.status, `${flags.join(" ")}: ${r.err}`).toBe(0)
          const factors = Array.from({ length: microBatches }, (_, j) => byHand(pairOf(j), m.ep))
          const want = { mean: factors.reduce((a, b) => a + b, 0) / microBatches, max: Math.max(...factors) }
          const steps = overloads(r.out)
          expect(steps.length).toBe(2)
          for (const layers of steps) {
            const routed = layers.filter((l) => l.overload !== undefined)
            expect(routed.map((l) => l.layer)).toEqual(mtp ? [0, 1, 2, 3, 4] : [0, 1, 2, 3])
            for (const l of routed) {
              expect(l.overload?.mean, `${flags.join(" ")}: layer ${l.layer}`).toBeCloseTo(want.mean, 12)
              expect(l.overload?.max, `${flags.join(" ")}: layer ${l.layer}`).toBeCloseTo(want.max, 12)
            }
          }
        },
      ),
      { numRuns: 10 },
    )
  }, 300_000)

  test("the routers' own routing: 1 at ep 1, within [1, ep], mean at most max; the text summary says it at ep > 1", async () => {
    for (const [flags, ep] of [
      [mapping(8, 2, 1, 1, 4), 4],
      [mapping(4, 1, 1, 1, 1), 1],
    ] as const) {
      const r = await run(["train", ...flags, "--layers", "2", "--steps", "2", "--log", "json"])
      expect(r.status, r.err).toBe(0)
      for (const layers of overloads(r.out)) {
        expect(layers.length).toBe(2)
        for (const l of layers) {
          const o = l.overload as Overload
          if (ep === 1) expect(o).toEqual({ mean: 1, max: 1 })
          expect(o.mean).toBeGreaterThanOrEqual(1)
          expect(o.max).toBeLessThanOrEqual(ep)
          expect(o.mean).toBeLessThanOrEqual(o.max)
        }
      }
      const text = await run(["train", ...flags, "--layers", "2", "--steps", "1"])
      expect(text.status, text.err).toBe(0)
      expect(text.out.includes("EP overload")).toBe(ep > 1)
    }
  }, 120_000)

  test("pleat routing --ep N: the step's factor by hand; an EP size that does not divide the experts refused", async () => {
    const dir = replayDir(2, 1, 4, 1)
    for (const ep of [1, 2, 4, 8]) {
      const r = await run(["routing", "--dir", dir, "--ep", String(ep), "--json"])
      expect(r.status, r.err).toBe(0)
      // dp 1, micro-batch 4: samples 0-3 are micro-batch 0 (experts 0, 1), samples 4-7 micro-batch 1 (0, 4).
      const block = experts / ep
      const loads = Array.from({ length: ep }, (_, rank) => [0, 1, 0, 4].filter((e) => Math.floor(e / block) === rank).length)
      const want = Math.max(...loads) / (4 / ep)
      for (const l of JSON.parse(r.out.trim()).layers) expect(l.overload).toBeCloseTo(want, 12)
    }
    const text = await run(["routing", "--dir", dir, "--ep", "4"])
    expect(text.out).toContain("overload 3.000 at ep 4")
    expect(refused(["routing", "--dir", dir, "--ep", "3"])).toContain("--ep: 3 does not divide the recording's 8 experts")
  }, 60_000)
})
