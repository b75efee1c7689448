// A model is a ModelDefinition the trainer loads by reference: the built-in model rebuilt from
// the public parts trains to the same bits as the default on local fibers and worker threads; a
// dense-MoE hybrid with parameters of its own trains differently and, under a folded pipeline
// mapping, agrees with one rank in lockstep (loss, gradients, parameters); references that name
// nothing fail naming what the module has; `--definition` checks its argument before any rank.
import * as Effect from "effect/Effect"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as BuiltinModels from "../../src/train/BuiltinModels.js"
import * as Lockstep from "../../src/train/Lockstep.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelDefinition from "../../src/train/ModelDefinition.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"

const definitions = new URL("./definitions.ts", import.meta.url)

const setup = (definition: ModelDefinition.Ref | undefined, parallel = ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 })): RankTrainer.TrainSetup => ({
  parallel,
  model: ModelConfig.small,
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 3,
  dtype: "float64",
  optimizer: Optimizer.defaults(3),
  auxLossCoeff: 0.01,
  ...(definition === undefined ? {} : { definition }),
})

const losses = (s: RankTrainer.TrainSetup, backend: "local" | "threads") => Effect.runPromise(Effect.map(Train.run(s, { steps: 3, backend }), (run) => run.map((x) => x.loss)))

describe("ModelDefinition", () => {
  test("the built-in model rebuilt from the public parts trains to the same bits, on local and threads", async () => {
    const builtin = await losses(setup(undefined), "local")
    expect(await losses(setup(ModelDefinition.ref(definitions, "rebuilt")), "local")).toEqual(builtin)
    expect(await losses(setup(ModelDefinition.ref(definitions, "rebuilt")), "threads")).toEqual(builtin)
    expect(await losses(setup(BuiltinModels.defaultRef), "threads")).toEqual(builtin)
  }, 120_000)

  test("a hybrid with its own parameters trains differently and agrees with one rank in lockstep", async () => {
    const hybrid = ModelDefinition.ref(definitions, "hybrid")
    const trained = await losses(setup(hybrid), "local")
    const builtin = await losses(setup(undefined), "local")
    expect(trained[0]).not.toBe(builtin[0])
    const compared = await Effect.runPromise(Lockstep.run(setup(hybrid, ParallelConfig.make({ world: 8, tp: 2, cp: 2, pp: 2, ep: 4, etp: 1 })), { steps: 2, backend: "threads" }))
    for (const k of compared) {
      expect(k.loss.error).toBeLessThan(1e-9)
      expect(k.gradient.error).toBeLessThan(1e-9)
      expect(k.parameter.error).toBeLessThan(1e-9)
    }
  }, 180_000)

  test("a reference to something that is not a definition names the definitions of the module", async () => {
    await expect(ModelDefinition.load(ModelDefinition.ref(definitions, "notAModel"))).rejects.toThrow(
      /has no model definition "notAModel" .*definitions there: hybrid, rebuilt, unreduced/,
    )
  })

  test("--definition: wrong form, missing file and wrong export exit 2 with one line", async () => {
    const run = async (value: string) => {
      const io = memoryIo()
      const outcome = Cli.run(["train", "--steps", "1", "--definition", value], io)
      return { status: await outcome, err: io.err }
    }
    for (const [value, message] of [
      ["no-hash.mjs", /is not FILE#EXPORT/],
      ["/nonexistent/model.mjs#m", /names \/nonexistent\/model\.mjs, which does not exist/],
      [`${definitions.pathname}#missing`, /has no model definition "missing"/],
    ] as const) {
      const r = await run(value)
      expect(r.status).toBe(2)
      expect(r.err.trim().split("\n")).toHaveLength(1)
      expect(r.err).toMatch(message)
    }
  })
})
