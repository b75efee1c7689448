// The planner's hybrid sharding (`pleat plan --distributed-optimizer-instances N`, pleat train's
// flag): each gradient group (dp x cp, edp) split into N slices of consecutive members, the
// optimizer state sharded within a slice. For any mapping N divides: the optimizer's memory and
// step are N times one instance's, everything else the same but the DP traffic (a reduce-scatter
// within the slice and an all-reduce of its part across the slices); N = the group's size is the
// replicated optimizer's all-reduce. Only mappings N divides are listed; none refused with one line.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as RankGrid from "../../src/mapping/RankGrid.js"
import * as Cluster from "../../src/plan/Cluster.js"
import type { Job, Mapping } from "../../src/plan/Job.js"
import * as Links from "../../src/plan/Links.js"
import * as MemoryModel from "../../src/plan/MemoryModel.js"
import * as Placement from "../../src/plan/Placement.js"
import * as Planner from "../../src/plan/Planner.js"
import * as ModelPresets from "../../src/train/ModelPresets.js"
import { run } from "../cli/cliRun.js"

const job = (instances?: number): Job => ({
  modelName: "mixtral-8x7b",
  model: ModelPresets.model("mixtral-8x7b", 1),
  cluster: Cluster.presets["dgx-h100"] as Cluster.Cluster,
  gpus: 256,
  seq: 4096,
  globalBatch: 512,
  precision: "bf16",
  ...(instances === undefined ? {} : { optimizerInstances: instances }),
})

/** One fixed mapping's prediction under `instances`. */
const predict = (map: Mapping, instances?: number) => {
  const fixed = { tp: map.tp, cp: map.cp, pp: map.pp, vpp: map.vpp, ep: map.ep, etp: map.etp, microBatch: map.microBatch, recompute: map.recompute }
  const outcome = Planner.plan(job(instances), fixed)
  return outcome.candidates.find((p) => p.mapping.order === map.order)
}

describe("the planner's distributed optimizer instances", () => {
  test("N times one instance's optimizer memory and step; the other terms unchanged but DP traffic", () => {
    const mappings = Planner.plan(job(), { recompute: "full", microBatch: 1, vpp: 1 }).candidates.map((p) => p.mapping)
    expect(mappings.length).toBeGreaterThan(5)
    let compared = 0
    fc.assert(
      fc.property(fc.constantFrom(...mappings), fc.constantFrom(2, 4, 8, 16), (map, n) => {
        fc.pre((map.dp * map.cp) % n === 0 && map.edp % n === 0)
        const one = predict(map)
        const sliced = MemoryModel.ofMapping(job(n), map)
        const whole = MemoryModel.ofMapping(job(), map)
        expect(sliced.optimizer).toBeCloseTo(n * whole.optimizer, 0)
        for (const part of ["weights", "gradients", "activations", "reserved"] as const) expect(sliced[part]).toBe(whole[part])
        const many = predict(map, n)
        // It may no longer fit the memory; where it does, only the optimizer and DP terms move.
        if (many === undefined || one === undefined) return
        compared++
        expect(many.breakdown.optimizer).toBeCloseTo(n * one.breakdown.optimizer, 12)
        for (const term of ["gemm", "attention", "elementwise", "fixed", "recompute", "tp", "cp", "ep", "etp", "pp", "bubble"] as const)
          expect(many.breakdown[term], term).toBe(one.breakdown[term])
      }),
      { numRuns: 40 },
    )
    // Not vacuous: most draws fit with N instances too.
    expect(compared).toBeGreaterThan(10)
  })

  test("the slices: consecutive members of the group and the members at one place in each; N = 1 the whole group", () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2, 4, 8), fc.constantFrom(1, 2, 4), fc.constantFrom(1, 2, 4, 8, 16), fc.constantFrom(4, 8), (tp, cp, n, gpusPerNode) => {
        const config = ParallelConfig.make({ world: 128, tp, cp, pp: 1, ep: 1 })
        const grid = ParallelConfig.denseGrid(config)
        const group = RankGrid.groupOf(grid, 0, ["dp", "cp"])
        fc.pre(group.length % n === 0)
        const memo: Placement.Memo = new Map()
        const s = Placement.slicedOf(memo, grid, ["dp", "cp"], gpusPerNode, n)
        expect(s.intra.size * s.inter.size).toBe(group.length)
        expect(s.intra.size).toBe(group.length / n)
        // The first slice's members and the nodes they touch, counted here.
        const first = group.slice(0, group.length / n)
        expect(s.intra.nodes).toBe(new Set(first.map((r) => Math.floor(r / gpusPerNode))).size)
        const across = Array.from({ length: n }, (_, i) => group[(i * group.length) / n] as number)
        expect(s.inter.nodes).toBe(new Set(across.map((r) => Math.floor(r / gpusPerNode))).size)
        if (n === 1) expect(s.intra).toEqual(Placement.spreadOf(memo, grid, ["dp", "cp"], gpusPerNode))
      }),
    )
  })

  test("N = the group's size: the slices are single members and the whole group; twice the optimizer of N / 2", () => {
    // tp 8 pp 4 ep 8 etp 1 at 256 GPUs: dp 8 x cp 1 and edp 8, the optimizer replicated in each with N 8.
    const map: Mapping = { tp: 8, cp: 1, pp: 4, vpp: 1, ep: 8, etp: 1, dp: 8, edp: 8, order: "tp-cp-ep-dp-pp", microBatch: 1, recompute: "full" }
    const config = ParallelConfig.make({ world: 256, tp: 8, pp: 4, ep: 8, etp: 1 })
    expect([config.sizes.dp, config.sizes.edp]).toEqual([8, 8])
    const [eight, four] = [predict(map, 8), predict(map, 4)]
    expect(eight).toBeDefined()
    expect(four).toBeDefined()
    expect((eight?.memory.optimizer ?? 0) / (four?.memory.optimizer ?? 1)).toBeCloseTo(2, 9)
    const cluster = Cluster.presets["dgx-h100"] as Cluster.Cluster
    const grid = ParallelConfig.denseGrid(config)
    const group = Placement.spreadOf(new Map(), grid, ["dp", "cp"], cluster.gpusPerNode)
    const sliced = Placement.slicedOf(new Map(), grid, ["dp", "cp"], cluster.gpusPerNode, 8)
    expect(sliced.intra.size).toBe(1)
    expect(sliced.inter).toEqual(group)
    // A slice of one moves nothing: the parameters are not gathered, the gradients only all-reduced.
    expect(Links.ring(cluster, sliced.intra, 1e9)).toBe(0)
  })

  test("pleat plan --distributed-optimizer-instances: listed mappings divisible, the JSON says N; none possible refused", async () => {
    const r = await run(["plan", "--model", "mixtral-8x7b", "--gpus", "256", "--global-batch", "512", "--distributed-optimizer-instances", "4", "--top", "20", "--json"])
    expect(r.status, r.err).toBe(0)
    const plan = JSON.parse(r.out)
    expect(plan.distributedOptimizerInstances).toBe(4)
    expect(plan.candidates.length).toBeGreaterThan(0)
    for (const c of plan.candidates) {
      expect((c.dp * c.cp) % 4).toBe(0)
      expect(c.edp % 4).toBe(0)
    }
    const plain = JSON.parse((await run(["plan", "--model", "mixtral-8x7b", "--gpus", "256", "--global-batch", "512", "--json"])).out)
    expect(plain.distributedOptimizerInstances).toBeUndefined()
    const none = await run(["plan", "--model", "mixtral-8x7b", "--gpus", "8", "--global-batch", "8", "--tp", "8", "--distributed-optimizer-instances", "2"])
    expect(none.status).toBe(2)
    expect(none.out).toBe("")
    expect(none.err).toMatch(/^pleat plan: --gpus: 8 allows no valid mapping .* and 2 distributed optimizer instances: .*fix: .*fewer --distributed-optimizer-instances.*\n$/)
  }, 60_000)
})
