// GPT-OSS's pieces on a device: `pleat train --device sim` (the host's kernels behind the device
// interface) with the experts' gated activation (--quick-geglu, --glu-linear-offset,
// --activation-func-clamp-value), softmax sinks (learnable and off-by-one) and the biases
// (--add-bias-linear, --router-bias; fc2's in ETP column blocks) on folded mappings
// gives the host's step losses bit for bit, in float32 and float64, with recompute and with the
// GPT-OSS preset (its window on every other layer and YaRN unrounded too). The ops' device
// paths alone: properties/tensor/GptOssOnDevice.prop.ts; the CUDA kernels: their twins.
import { describe, expect, test } from "vitest"
import { run } from "./cliRun.js"
import { stepLosses } from "./tokenFiles.js"

const gptOss = ["--quick-geglu", "--glu-linear-offset", "1", "--activation-func-clamp-value", "7"]
const folded = ["--world", "4", "--tp", "2", "--cp", "1", "--pp", "2", "--ep", "2", "--hidden", "16", "--seq", "16", "--layers", "2", "--global-batch", "4"]

const losses = async (flags: ReadonlyArray<string>): Promise<Array<number>> => {
  const r = await run(["train", "--steps", "3", "--log", "json", ...flags])
  expect(r.status, `${flags.join(" ")}: ${r.err}`).toBe(0)
  const l = stepLosses(r.out)
  expect(l).toHaveLength(3)
  return l
}

describe("GPT-OSS's activation and sinks on a device (sim)", () => {
  test("folded mappings give the host's losses bit for bit", async () => {
    const cases = [
      // With every bias; fc2's in ETP column blocks.
      [...folded.map((f, i) => (folded[i - 1] === "--ep" ? "1" : f)), ...gptOss, "--softmax-type", "learnable", "--add-bias-linear", "--router-bias", "--etp", "2"],
      // A clamp that binds in this small model, fixed sinks, recompute of the whole layer.
      [...folded, "--quick-geglu", "--activation-func-clamp-value", "0.05", "--softmax-type", "off-by-one", "--recompute", "full"],
      [...folded, ...gptOss, "--softmax-type", "learnable", "--dtype", "float64", "--recompute", "selective"],
      ["--model", "gpt-oss-20b", "--scale", "64", "--layers", "2"],
    ]
    for (const flags of cases) {
      const host = await losses(flags)
      expect(await losses([...flags, "--device", "sim"]), flags.join(" ")).toEqual(host)
    }
  }, 300_000)
})
