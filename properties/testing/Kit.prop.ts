// pleat/testing checked as users will use it: its mapping arbitrary draws only valid, varied
// mappings (and the ones a model fits); its routing cases and schedules pass pleat's own checks;
// and EqualsOneRank passes a correct tensor-parallel program on local fibers and worker threads
// while it catches two broken ones, naming the mapping and the array that differs.
import * as Result from "effect/Result"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as Router from "../../src/moe/Router.js"
import * as Check from "../../src/pipeline/Check.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as EqualsOneRank from "../../src/testing/EqualsOneRank.js"
import * as Mappings from "../../src/testing/Mappings.js"
import * as Routing from "../../src/testing/Routing.js"
import * as Schedules from "../../src/testing/Schedules.js"

const programs = new URL("./programs.ts", import.meta.url)

describe("pleat/testing arbitraries", () => {
  test("mappings are valid, within the world bounds, and varied (folding, vpp, other orders)", () => {
    const seen = { folded: false, vpp: false, order: false, ep: false }
    fc.assert(
      fc.property(Mappings.mappings({ maxWorld: 16, minWorld: 2, vpp: true }), (m) => {
        expect(Result.isSuccess(ParallelConfig.validate(m))).toBe(true)
        expect(m.world).toBeGreaterThanOrEqual(2)
        expect(m.world).toBeLessThanOrEqual(16)
        const config = Mappings.toConfig(m)
        expect(config.sizes.tp * config.sizes.cp * config.sizes.dp * config.sizes.pp).toBe(m.world)
        if (m.etp !== m.tp) seen.folded = true
        if (m.vpp !== undefined) seen.vpp = true
        if (m.order !== "tp-cp-ep-dp-pp") seen.order = true
        if (m.ep > 1) seen.ep = true
      }),
      { numRuns: 300 },
    )
    expect(seen).toEqual({ folded: true, vpp: true, order: true, ep: true })
  })

  test("fitsModel keeps only the mappings the model and batch fit", () => {
    const model = { ...ModelConfig.small, heads: 4, kvHeads: 2, experts: 4 }
    const batch = { microBatch: 1, globalBatch: 8 }
    fc.assert(
      fc.property(Mappings.mappings({ maxWorld: 8, fits: Mappings.fitsModel(model, batch) }), (m) => {
        expect(ModelConfig.problemOf(model, batch, Mappings.toConfig(m))).toBeUndefined()
      }),
      { numRuns: 100 },
    )
  })

  test("routing cases pass MoeSettings.check and route every token to topk distinct experts", () => {
    fc.assert(
      fc.property(Routing.routingCases(), (c) => {
        expect(() => MoeSettings.check(c.settings, c.experts, c.topk)).not.toThrow()
        const logits = Tensor.fromArray(c.logits.flat(), [c.logits.length, c.experts], { dtype: "float64" })
        const { scoreFunction, preSoftmax, numGroups, groupTopk, scalingFactor } = c.settings
        const routed = Router.routing(logits, { topk: c.topk, scoreFunction, preSoftmax, numGroups, groupTopk, scalingFactor })
        expect(routed.indices.length).toBe(c.logits.length * c.topk)
        for (let t = 0; t < c.logits.length; t++) expect(new Set(routed.indices.slice(t * c.topk, (t + 1) * c.topk)).size).toBe(c.topk)
      }),
      { numRuns: 100 },
    )
  })

  test("schedules pass the pipeline checks", () => {
    fc.assert(
      fc.property(Schedules.schedules(), (c) => {
        expect(() => Check.check(c.schedule)).not.toThrow()
      }),
      { numRuns: 100 },
    )
  })
})

describe("EqualsOneRank", () => {
  test("passes a correct tensor-parallel program on local fibers", async () => {
    await EqualsOneRank.check({ module: programs, export: "tpMlp", mappings: Mappings.mappings({ maxWorld: 8 }), numRuns: 15, absolute: 1e-12, relative: 1e-12 })
  })

  test("passes it on worker threads and on both zero-copy backends too", async () => {
    for (const backend of ["threads", "threads-zero-copy", "local-zero-copy"] as const)
      await EqualsOneRank.check({
        module: programs,
        export: "tpMlp",
        backend,
        mappings: Mappings.mappings({ minWorld: 2, maxWorld: 4 }),
        numRuns: 3,
        absolute: 1e-12,
        relative: 1e-12,
      })
  }, 120_000)

  test("catches a program that forgets to gather, naming a tp > 1 mapping and the array", async () => {
    const failure = EqualsOneRank.check({ module: programs, export: "ungathered", mappings: Mappings.mappings({ maxWorld: 8 }), numRuns: 30 })
    await expect(failure).rejects.toThrow(/world \d+: tp [2-9].* rank \d+ y has \d+ values, \d+ on one rank/)
  })

  test("catches a program that depends on the dp coordinate, shrunk to a small mapping", async () => {
    const failure = EqualsOneRank.check({ module: programs, export: "dpDependent", mappings: Mappings.mappings({ maxWorld: 8 }), numRuns: 40 })
    await expect(failure).rejects.toThrow(/Counterexample: \[\{"world":[2-4],.*Got error: world [2-4]: .*rank [1-3] dx\[0\] is/s)
  })

  test("runMapping returns every rank's outcome in rank order", async () => {
    const outcomes = await EqualsOneRank.runMapping({ module: programs, export: "tpMlp" }, { world: 4, tp: 2, cp: 1, pp: 1, ep: 1, etp: 1, order: "tp-cp-ep-dp-pp" }, 5)
    expect(outcomes).toHaveLength(4)
    expect(outcomes[0]).toEqual(outcomes[3])
  })
})
