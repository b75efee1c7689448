// `--model NAME` and `--scale N` of `pleat train` / `pleat verify`: the preset's (scaled) shape and
// router options reach the job; the layers are defaults < preset < config file < flags, so a size
// given in the file or as a flag wins over the preset's; an unknown name, and --scale without a
// preset, are refused with exit 2 and one line; `pleat train --model mixtral-8x7b --scale 64`
// trains on the default local mapping; without --model the job is the one it always was.
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelPresets from "../../src/train/ModelPresets.js"
import * as Params from "../../src/train/Params.js"
import { configFile } from "./configFile.js"
import { refused } from "./refused.js"

const modelOf = (argv: ReadonlyArray<string>): ModelConfig.ModelConfig => {
  const r = TrainOptions.resolve(argv)
  if (r === "help") throw new Error("help")
  return r.setup.model
}

describe("--model and --scale", () => {
  test("every preset scaled by 64 resolves on the default mapping to the preset's scaled model", () => {
    for (const name of ModelPresets.names) expect(modelOf(["--model", name, "--scale", "64"]), name).toEqual(ModelPresets.model(name, 64))
  })

  test("the preset from a config file is the same job as from flags", () => {
    const file = configFile({ model: "qwen2-57b-a14b", scale: 64 })
    expect(modelOf(["--config", file])).toEqual(modelOf(["--model", "qwen2-57b-a14b", "--scale", "64"]))
  })

  test("flags and the config file override the preset, flags over the file", () => {
    const preset = ModelPresets.model("mixtral-8x7b", 64)
    const byFlag = modelOf(["--model", "mixtral-8x7b", "--scale", "64", "--layers", "4", "--moe-ffn", "48", "--score-function", "sigmoid"])
    expect(byFlag).toEqual({ ...preset, layers: 4, moeFfn: 48, moe: { ...preset.moe, scoreFunction: "sigmoid" } })
    const file = configFile({ model: "mixtral-8x7b", scale: 64, layers: 6, hidden: 32 })
    const byFileAndFlag = modelOf(["--config", file, "--layers", "8"])
    expect(byFileAndFlag).toEqual({ ...preset, layers: 8, hidden: 32 })
    // A router option the preset sets is overridden by the flag as any other.
    const deepseek = modelOf(["--model", "deepseek-v3-style", "--scale", "64", "--aux-loss", "none"])
    expect(deepseek.moe?.auxLosses).toEqual([])
    expect(deepseek.moe?.scoreFunction).toBe("sigmoid")
  })

  test("without --model the job is the default one", () => {
    expect(modelOf([])).toEqual({ ...ModelConfig.small, moe: MoeSettings.defaults })
  })

  test("an unknown preset is refused with the names; --scale without --model too; a preset that does not fit names itself", () => {
    const unknown = refused(["train", "--model", "mixtral-9x9b"])
    for (const name of ModelPresets.names) expect(unknown).toContain(name)
    expect(unknown).toContain("--model")
    expect(refused(["train", "--scale", "4"])).toMatch(/--scale.*has no model preset.*--model NAME/)
    expect(refused(["verify", "--model", "deepseek-v3-style"])).toMatch(/--layers \(of --model deepseek-v3-style\): 61 is not divisible by pp/)
    expect(refused(["train", "--model", "mixtral-8x7b", "--scale", "0"])).toMatch(/--scale/)
  })

  test("pleat train --model mixtral-8x7b --scale 64 --steps 5 trains on the default local mapping and prints its memory table", async () => {
    const io = memoryIo()
    const status = await Cli.run(["train", "--model", "mixtral-8x7b", "--scale", "64", "--steps", "5"], io)
    expect(status, io.err).toBe(0)
    expect(io.out).toMatch(/2 layers, 8 experts top-2, 8 ranks/)
    expect(io.out).toMatch(/final loss \d+\.\d+ \(step 1: \d+\.\d+\)/)
    const lines = io.out.split("\n")
    const title = lines.findIndex((l) => l.startsWith("memory per rank"))
    expect(title).toBeGreaterThan(0)
    expect(lines[title + 1]?.trim().split(/\s+/)).toEqual(["rank", "parameters", "gradients", "optimizer", "activations", "total"])
    for (let r = 0; r < 8; r++) expect(lines[title + 2 + r]).toMatch(new RegExp(`^\\s*${r}(\\s+\\d+\\.\\d (KiB|MiB)){5}$`))
  }, 60_000)

  test("the memory table's figures: on one rank, parameters and gradients are the model's bytes, optimizer state twice that", async () => {
    const io = memoryIo()
    const one = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
    const status = await Cli.run(["train", ...one, "--model", "mixtral-8x7b", "--scale", "64", "--steps", "1", "--log", "json"], io)
    expect(status, io.err).toBe(0)
    const summary = JSON.parse(io.out.trim().split("\n").at(-1) as string) as { memory: Array<Record<string, number>> }
    const elements = Params.specs(ModelPresets.model("mixtral-8x7b", 64)).reduce((a, s) => a + s.shape.reduce((p, d) => p * d, 1), 0)
    expect(summary.memory).toHaveLength(1)
    const m = summary.memory[0] as Record<string, number>
    expect(m.parameterBytes).toBe(4 * elements)
    expect(m.gradientBytes).toBe(4 * elements)
    expect(m.optimizerStateBytes).toBe(8 * elements)
    expect(m.peakActivationBytes).toBeGreaterThan(0)
  }, 60_000)
})
