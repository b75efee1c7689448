// Packed documents (`--eod-token` with `--reset-attention-mask`, `--reset-position-ids`,
// `--eod-mask-loss`): folded mappings train as one rank (pleat verify, float64: tp with sequence
// parallelism, cp 2 and 4 (a document's keys on other cp ranks), pp and vpp, multi-latent
// attention and multi-token prediction, worker threads; float32 on the native kernels, on the host
// and a simulated device); on a token file the masked loss
// differs from the plain one where the data holds the EOD and equals it bit for bit where it
// does not; a run learns; with --calculate-per-token-loss the step's loss does not depend on the
// micro-batch size (the mean of micro-batch means does); refusals.
import { describe, expect, test } from "vitest"
import { run } from "./cliRun.js"
import { refused } from "./refused.js"
import { records, uint16File } from "./tokenFiles.js"

const documents = ["--eod-token", "5", "--reset-attention-mask", "--reset-position-ids", "--eod-mask-loss"]
const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]

/** The step losses of a --log json run. */
const losses = (out: string) => (records(out, "step") as unknown as Array<{ loss: number }>).map((s) => s.loss)

describe("packed documents", () => {
  test("folded mappings train as one rank (pleat verify: float64, and float32 on the native kernels)", async () => {
    const cases = [
      // The default mapping: tp 2 (SP), cp 2, pp 2, ep 2.
      [...documents, "--seq", "32"],
      ["--world", "8", "--tp", "2", "--cp", "4", "--pp", "1", "--ep", "4", "--seq", "64", "--micro-batch", "2", ...documents],
      ["--world", "4", "--cp", "1", "--ep", "2", "--vpp", "2", "--layers", "8", "--seq", "32", "--eod-token", "3", "--reset-attention-mask"],
      ["--seq", "32", "--multi-latent-attention", "--mtp-num-layers", "1", ...documents],
      ["--world", "4", "--tp", "2", "--cp", "2", "--pp", "1", "--ep", "2", "--seq", "32", "--eod-token", "7", "--eod-mask-loss", "--backend", "threads"],
      ["--world", "2", "--tp", "1", "--cp", "2", "--pp", "1", "--ep", "1", "--seq", "32", "--eod-token", "7", "--reset-position-ids"],
      ["--seq", "32", "--micro-batch", "2", "--mtp-num-layers", "1", "--calculate-per-token-loss", ...documents],
    ]
    for (const flags of cases) {
      const r = await run(["verify", "--dtype", "float64", "--steps", "2", ...flags])
      expect(r.status, `${flags.join(" ")}: ${r.out}${r.err}`).toBe(0)
    }
    // float32, the path users run: the native kernels with first keys, on the host and behind the device interface.
    for (const flags of [
      ["--seq", "32", ...documents],
      ["--seq", "32", "--device", "sim", ...documents],
    ]) {
      const r = await run(["verify", "--steps", "2", ...flags])
      expect(r.status, `${flags.join(" ")}: ${r.out}${r.err}`).toBe(0)
    }
  }, 300_000)

  test("--eod-mask-loss changes the loss only where the data holds the EOD; a run learns", async () => {
    // Documents of ids 0..9, each ended by id 20 (vocabulary 32).
    const data = uint16File(Array.from({ length: 4000 }, (_, i) => (i % 7 === 6 ? 20 : (i * 3) % 10)))
    const base = [
      "train",
      ...oneRank,
      "--hidden",
      "16",
      "--layers",
      "2",
      "--vocab",
      "32",
      "--seq",
      "16",
      "--global-batch",
      "4",
      "--dtype",
      "float64",
      "--log",
      "json",
      "--steps",
      "1",
      "--data",
      data,
    ]
    const plain = losses((await run(base)).out)[0]
    expect(losses((await run([...base, "--eod-token", "21", "--eod-mask-loss"])).out)[0]).toBe(plain)
    expect(losses((await run([...base, "--eod-token", "20", "--eod-mask-loss"])).out)[0]).not.toBe(plain)
    const header = await run(["train", ...oneRank, "--steps", "1", "--eod-token", "3", "--reset-attention-mask", "--eod-mask-loss", "--calculate-per-token-loss"])
    expect(header.out.split("\n")[0]).toContain("; documents ended by id 3 (attention within each, EOD inputs left out of the loss); per-token loss;")
    const learned = losses((await run(["train", ...oneRank, "--hidden", "32", "--vocab", "31", "--seq", "32", "--steps", "30", "--log", "json", ...documents])).out)
    expect(learned.at(-1) as number).toBeLessThan(0.6 * (learned[0] as number))
  }, 120_000)

  test("--calculate-per-token-loss: the step's loss and gradients do not depend on how the step is cut into micro-batches; means of means do", async () => {
    // Without aux losses (they are per micro-batch by definition); with multi-token prediction.
    const data = uint16File(Array.from({ length: 4000 }, (_, i) => (i % 5 === 4 || i % 11 === 3 ? 20 : (i * 7) % 13)))
    const base = ["train", ...oneRank, "--hidden", "16", "--layers", "2", "--vocab", "32", "--seq", "16", "--global-batch", "4", "--dtype", "float64", "--aux-loss", "none"]
    const step = [...base, "--log", "json", "--steps", "2", "--data", data, "--eod-token", "20", "--eod-mask-loss", "--mtp-num-layers", "1"]
    const perToken = await Promise.all(["1", "2", "4"].map(async (mb) => losses((await run([...step, "--calculate-per-token-loss", "--micro-batch", mb])).out)))
    for (const other of perToken.slice(1)) other.forEach((loss, i) => expect(Math.abs(loss - (perToken[0]?.[i] as number))).toBeLessThan(1e-13))
    const means = await Promise.all(["1", "4"].map(async (mb) => losses((await run([...step, "--micro-batch", mb])).out)))
    expect(Math.abs((means[0]?.[0] as number) - (means[1]?.[0] as number))).toBeGreaterThan(1e-6)
    // One micro-batch a step: the step's mean is the micro-batch's.
    expect(Math.abs((means[1]?.[0] as number) - (perToken[0]?.[0] as number))).toBeLessThan(1e-13)
  }, 120_000)

  test("refusals name the flag and the fix", () => {
    expect(refused(["train", "--reset-attention-mask"])).toContain("--reset-attention-mask")
    expect(refused(["train", "--reset-attention-mask"])).toContain("--eod-token")
    expect(refused(["train", "--eod-mask-loss"])).toContain("--eod-token")
    expect(refused(["train", "--eod-token", "3"])).toContain("is read by nothing")
    expect(refused(["train", "--eod-token", "32", "--eod-mask-loss"])).toContain("is not an id of the vocabulary of 32")
    expect(refused(["train", "--eod-token", "-1", "--eod-mask-loss"])).toContain("--eod-token")
  })
})
