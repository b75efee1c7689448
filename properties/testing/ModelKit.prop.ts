// ModelEqualsOneRank, pleat/testing's check of a whole model: the dense-MoE hybrid (a user's
// model with parameters of its own) passes under random mappings that fit it; the same model with
// its dense branch missing its tensor-parallel collectives is caught, on a tp > 1 mapping, naming
// the mapping, the step and what differs.
import { describe, expect, test } from "vitest"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelDefinition from "../../src/train/ModelDefinition.js"
import * as Mappings from "../../src/testing/Mappings.js"
import * as ModelEqualsOneRank from "../../src/testing/ModelEqualsOneRank.js"

const definitions = new URL("../train/definitions.ts", import.meta.url)
const batch = { microBatch: 1, globalBatch: 8 }

describe("ModelEqualsOneRank", () => {
  test("a user's hybrid model equals one rank under random mappings", async () => {
    await ModelEqualsOneRank.check({ definition: ModelDefinition.ref(definitions, "hybrid"), model: ModelConfig.small, batch, numRuns: 4 })
  }, 240_000)

  test("a model whose branch skips its TP collectives is caught on a tp > 1 mapping", async () => {
    const failure = ModelEqualsOneRank.check({
      definition: ModelDefinition.ref(definitions, "unreduced"),
      model: ModelConfig.small,
      batch,
      mappings: Mappings.mappings({ minWorld: 2, maxWorld: 4 }).filter((m) => m.tp > 1),
      numRuns: 2,
    })
    await expect(failure).rejects.toThrow(/Got error: world [24]: tp [24] .*step 1: .* differs from one rank by/s)
  }, 240_000)
})
