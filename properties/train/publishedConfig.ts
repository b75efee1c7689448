// The published config.json tests' shared steps: a config read as pleat's model, and its shape
// compared with a preset's, key by key (the key named when one differs).
import * as Schema from "effect/Schema"
import { expect } from "vitest"
import * as HfConfig from "../../src/train/HfConfig.js"
import type * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelPresets from "../../src/train/ModelPresets.js"

/** The keys of a model's shape every published config is compared on. */
const shapeKeys = [
  "vocab",
  "hidden",
  "layers",
  "heads",
  "kvHeads",
  "experts",
  "topk",
  "moeFfn",
  "moeEvery",
  "denseFirst",
  "sharedExpertFfn",
  "untieEmbeddings",
  "ropeTheta",
  "normEps",
] as const

/** `config` (a config.json's keys) read by pleat import, `dir` naming it in refusals. */
export const readConfig = (config: Record<string, unknown>, dir: string) => HfConfig.modelOf(Schema.decodeUnknownSync(HfConfig.HfConfig)(config), dir)

/** Expects `model` to have preset `name`'s shape, on the common keys and `more`. */
export const expectPresetShape = (model: ModelConfig.ModelConfig, name: ModelPresets.Name, more: ReadonlyArray<keyof ModelConfig.ModelConfig>): void => {
  const preset = ModelPresets.model(name, 1)
  for (const key of [...shapeKeys, ...more]) expect(model[key], key).toEqual(preset[key])
}
