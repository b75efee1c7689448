// Evaluation on held-out data (`--eval-data`): its loss is the training forward's language-model
// loss on the same sequences (checked where training cannot move the weights: a learning rate of
// 1e-300 in float64), it agrees across mappings and backends, it leaves the training untouched
// (the same losses, bit for bit, with the MoE state, expert biases and the distributed optimizer
// in play; Sinkhorn routing evaluates without its balancing), and what cannot evaluate is refused
// before any work (exit 2, one line).
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as CheckpointDirectory from "../../src/train/CheckpointDirectory.js"
import { refused } from "./refused.js"
import { records, uint16File, walk } from "./tokenFiles.js"

const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err }
}

const train = uint16File(walk(700, 1))
const heldOut = uint16File(walk(300, 977))
const folded = ["--world", "4", "--tp", "1", "--cp", "2", "--pp", "2", "--ep", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4", "--vocab", "40"]
const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--hidden", "16", "--seq", "8", "--global-batch", "4", "--vocab", "40"]

describe("evaluation on held-out data", () => {
  test("is the training forward's loss on the same sequences: with weights that cannot move, the mean of the first steps' losses", async () => {
    // The eval file is the training file: evaluation reads sequences 0 .. 2G-1, what steps 1 and 2 trained on.
    const r = await run([
      "train",
      ...folded,
      "--data",
      train,
      "--eval-data",
      train,
      "--eval-batches",
      "2",
      "--lr",
      "1e-300",
      "--aux-loss",
      "none",
      "--dtype",
      "float64",
      "--steps",
      "2",
      "--log",
      "json",
    ])
    expect(r.status, r.err).toBe(0)
    const steps = records(r.out, "step").map((s) => s.loss as number)
    const evals = records(r.out, "eval")
    expect(evals.map((e) => e.step)).toEqual([2])
    expect(Math.abs((evals[0]?.evalLoss as number) - ((steps[0] as number) + (steps[1] as number)) / 2)).toBeLessThan(1e-12)
    expect(records(r.out, "summary")[0]?.evalLoss).toBe(evals[0]?.evalLoss)
  }, 60_000)

  test("agrees between a folded mapping and one rank (float64), after every --eval-every steps and the last", async () => {
    const flags = ["--data", train, "--eval-data", heldOut, "--eval-every", "2", "--steps", "5", "--dtype", "float64", "--log", "json"]
    const a = await run(["train", ...folded, ...flags])
    const b = await run(["train", ...oneRank, ...flags])
    expect(a.status, a.err).toBe(0)
    expect(b.status, b.err).toBe(0)
    const ea = records(a.out, "eval")
    const eb = records(b.out, "eval")
    expect(ea.map((e) => e.step)).toEqual([2, 4, 5])
    expect(eb.map((e) => e.step)).toEqual([2, 4, 5])
    ea.forEach((e, i) => expect(Math.abs((e.evalLoss as number) - (eb[i]?.evalLoss as number)) / (e.evalLoss as number)).toBeLessThan(1e-10))
    expect(ea[0]?.evalPerplexity).toBeCloseTo(Math.exp(ea[0]?.evalLoss as number), 10)
  }, 60_000)

  test("leaves the training untouched (bit for bit: expert biases, distributed optimizer, pipeline) and reads the same on threads", async () => {
    const flags = [...folded, "--data", train, "--score-function", "sigmoid", "--expert-bias", "--distributed-optimizer", "--vpp", "2", "--steps", "4", "--log", "json"]
    const plain = await run(["train", ...flags])
    const evaluated = await run(["train", ...flags, "--eval-data", heldOut, "--eval-every", "1"])
    const threads = await run(["train", ...flags, "--eval-data", heldOut, "--eval-every", "1", "--backend", "threads"])
    for (const r of [plain, evaluated, threads]) expect(r.status, r.err).toBe(0)
    const losses = (out: string) => records(out, "step").map((s) => [s.loss, s.gradNorm])
    expect(losses(evaluated.out)).toEqual(losses(plain.out))
    expect(records(evaluated.out, "eval")).toHaveLength(4)
    const evals = (out: string) => records(out, "eval").map((e) => [e.step, e.evalLoss])
    expect(evals(threads.out)).toEqual(evals(evaluated.out))
  }, 120_000)

  test("with quantile balancing: selects with the trained betas and leaves them untouched", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-eval-quantile-"))
    const flags = [...folded, "--data", train, "--quantile-balancing", "--dtype", "float64", "--steps", "4", "--log", "json"]
    const plain = await run(["train", ...flags])
    const evaluated = await run(["train", ...flags, "--eval-data", heldOut, "--eval-every", "1", "--save", dir])
    for (const r of [plain, evaluated]) expect(r.status, r.err).toBe(0)
    const losses = (out: string) => records(out, "step").map((s) => [s.loss, s.gradNorm])
    expect(losses(evaluated.out)).toEqual(losses(plain.out))
    const last = records(evaluated.out, "eval").at(-1)?.evalLoss as number
    // The checkpoint evaluated as loaded gives the run's last evaluation; with its betas zeroed, another.
    const asLoaded = async () => {
      const r = await run([
        "train",
        ...oneRank,
        "--data",
        train,
        "--quantile-balancing",
        "--dtype",
        "float64",
        "--log",
        "json",
        "--eval-data",
        heldOut,
        "--steps",
        "4",
        "--resume",
        dir,
      ])
      expect(r.status, r.err).toBe(0)
      return records(r.out, "eval")[0]?.evalLoss as number
    }
    expect(Math.abs((await asLoaded()) - last) / last).toBeLessThan(1e-10)
    const file = CheckpointDirectory.manifestOf(CheckpointDirectory.locate(dir) as string)
    const json = JSON.parse(readFileSync(file, "utf8")) as { quantileBeta: Record<string, Array<number>> }
    for (const layer of Object.keys(json.quantileBeta)) json.quantileBeta[layer] = (json.quantileBeta[layer] as Array<number>).map(() => 0)
    writeFileSync(file, JSON.stringify(json))
    expect(Math.abs((await asLoaded()) - last) / last).toBeGreaterThan(1e-10)
  }, 120_000)

  test("a resume at --steps evaluates the checkpoint as saved: the run's last evaluation, under another mapping, with no step trained", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-eval-only-"))
    const common = ["--data", train, "--eval-data", heldOut, "--dtype", "float64", "--expert-bias", "--score-function", "sigmoid", "--log", "json"]
    const trained = await run(["train", ...folded, ...common, "--steps", "3", "--save", dir])
    expect(trained.status, trained.err).toBe(0)
    const again = await run(["train", ...oneRank, ...common, "--steps", "3", "--resume", dir])
    expect(again.status, again.err).toBe(0)
    expect(records(again.out, "step")).toEqual([])
    const at = records(again.out, "eval")
    expect(at.map((e) => e.step)).toEqual([3])
    const before = records(trained.out, "eval")[0]?.evalLoss as number
    expect(Math.abs((at[0]?.evalLoss as number) - before) / before).toBeLessThan(1e-10)
    expect(records(again.out, "summary")[0]).toMatchObject({ steps: 0, lastStep: 3, finalLoss: null, evalLoss: at[0]?.evalLoss })
    // Without --eval-data there is nothing to do, as before.
    const idle = await run(["train", ...oneRank, "--steps", "3", "--resume", dir, "--data", train, "--dtype", "float64"])
    expect(idle.status).toBe(0)
    expect(idle.out).toMatch(/^pleat train: nothing to do: the checkpoint in .* is at step 3/)
    const pretty = await run(["train", ...oneRank, ...common.slice(0, -2), "--steps", "2", "--resume", dir])
    expect(pretty.status, pretty.err).toBe(0)
    expect(pretty.out).toMatch(/^eval after step 3: loss \d+\.\d+, perplexity \d+\.\d+$/m)
    expect(pretty.out).toMatch(/^no steps trained: the checkpoint in .* is at step 3 and --steps 2 counts all steps; it was evaluated as saved$/m)
  }, 60_000)

  test("--steps 0 evaluates the model as initialized: the loss the first step trains on", async () => {
    const flags = [...folded, "--data", train, "--aux-loss", "none", "--dtype", "float64", "--log", "json"]
    const initial = await run(["train", ...flags, "--steps", "0", "--eval-data", train, "--eval-batches", "1"])
    const trained = await run(["train", ...flags, "--steps", "1"])
    expect(initial.status, initial.err).toBe(0)
    expect(records(initial.out, "step")).toEqual([])
    const at = records(initial.out, "eval")
    expect(at.map((e) => e.step)).toEqual([0])
    const first = records(trained.out, "step")[0]?.loss as number
    expect(Math.abs((at[0]?.evalLoss as number) - first)).toBeLessThan(1e-12)
    const idle = await run(["train", "--steps", "0"])
    expect(idle.status).toBe(0)
    expect(idle.out).toBe("pleat train: nothing to do: --steps 0 trains nothing; pass --steps N above 0 to train, or add --eval-data FILE to evaluate the initial model\n")
    expect(refused(["verify", ...folded, "--steps", "0"])).toBe("pleat verify: --steps: 0 compares no step; fix: pass --steps 1 or more")
  }, 60_000)

  test("the router's input jitter is training's: an evaluation reads the loss without it, bit for bit", async () => {
    const flags = [...oneRank, "--data", train, "--eval-data", train, "--eval-batches", "1", "--dtype", "float64", "--log", "json"]
    const run1 = async (extra: ReadonlyArray<string>, steps: string, kind: "eval" | "step") => {
      const r = await run(["train", ...flags, ...extra, "--steps", steps])
      expect(r.status, r.err).toBe(0)
      return records(r.out, kind)[0]?.[kind === "eval" ? "evalLoss" : "loss"] as number
    }
    expect(await run1(["--input-jitter-eps", "0.5"], "0", "eval")).toBe(await run1([], "0", "eval"))
    expect(await run1(["--input-jitter-eps", "0.5"], "1", "step")).not.toBe(await run1([], "1", "step"))
  }, 60_000)

  test("Sinkhorn routing evaluates without its balancing: pre-softmax routing's loss, bit for bit, where training on the same sequences routes otherwise", async () => {
    // The eval file is the training file: the evaluation reads the sequence step 1 trains on.
    const flags = [...oneRank, "--data", train, "--eval-data", train, "--eval-batches", "1", "--dtype", "float64", "--log", "json", "--aux-loss", "none"]
    const evalLoss = async (router: ReadonlyArray<string>) => {
      const r = await run(["train", ...flags, ...router, "--steps", "0"])
      expect(r.status, r.err).toBe(0)
      return records(r.out, "eval")[0]?.evalLoss as number
    }
    const firstLoss = async (router: ReadonlyArray<string>) => {
      const r = await run(["train", ...flags, ...router, "--steps", "1"])
      expect(r.status, r.err).toBe(0)
      return records(r.out, "step")[0]?.loss as number
    }
    const sinkhornEval = await evalLoss(["--sinkhorn"])
    expect(sinkhornEval).toBe(await evalLoss(["--pre-softmax"]))
    // Training balances the selection: its first loss is not the evaluation's of the same weights and tokens.
    expect(await firstLoss(["--sinkhorn"])).not.toBe(sinkhornEval)
    expect(Math.abs((await firstLoss(["--pre-softmax"])) - sinkhornEval)).toBeLessThan(1e-12)
  }, 60_000)

  test("pretty output: a line per evaluation and the last in the summary", async () => {
    const r = await run(["train", ...oneRank, "--eval-data", heldOut, "--steps", "2", "--eval-batches", "1"])
    expect(r.status, r.err).toBe(0)
    expect(r.out).toMatch(/^eval after step 2: loss \d+\.\d+, perplexity \d+\.\d+$/m)
    expect(r.out).toMatch(new RegExp(`^eval loss \\d+\\.\\d+ after step 2 \\(1 global batches of ${heldOut.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}\\)$`, "m"))
  }, 60_000)
})

describe("evaluation on a device (sim: the host's arithmetic behind the device interface)", () => {
  test("gives the host's losses bit for bit: after steps, with the optimizer and the distributed optimizer on the device, in bf16, and of a resumed checkpoint before any step", async () => {
    const losses = async (flags: ReadonlyArray<string>) => {
      const r = await run(["train", ...folded, "--data", train, "--eval-data", heldOut, "--eval-batches", "2", "--eval-every", "1", "--log", "json", ...flags])
      expect(r.status, r.err).toBe(0)
      return records(r.out, "eval").map((e) => e.evalLoss)
    }
    for (const flags of [
      ["--steps", "2"],
      ["--steps", "2", "--distributed-optimizer", "--precision", "bf16"],
      ["--steps", "2", "--dtype", "float64"],
    ]) {
      const host = await losses(flags)
      expect(host).toHaveLength(2)
      // The weights moved between the evaluations: the device's evaluation read the updated ones.
      expect(host[0]).not.toBe(host[1])
      expect(await losses([...flags, "--device", "sim"]), flags.join(" ")).toEqual(host)
    }
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-eval-device-"))
    expect((await run(["train", ...folded, "--data", train, "--steps", "1", "--save", dir])).status).toBe(0)
    const resumed = async (flags: ReadonlyArray<string>) => {
      const r = await run(["train", ...folded, "--resume", dir, "--steps", "1", "--eval-data", heldOut, "--log", "json", ...flags])
      expect(r.status, r.err).toBe(0)
      return records(r.out, "eval").map((e) => e.evalLoss)
    }
    expect(await resumed(["--device", "sim"])).toEqual(await resumed([]))
  }, 120_000)
})

describe("what cannot evaluate is refused before any work", () => {
  test("eval flags without --eval-data, pleat verify, a bad held-out file", () => {
    expect(refused(["train", "--eval-every", "5"])).toBe("pleat train: --eval-every: 5 has no held-out data to evaluate on; fix: add --eval-data FILE, or drop --eval-every")
    expect(refused(["train", "--eval-batches", "2"])).toBe("pleat train: --eval-batches: 2 has no held-out data to evaluate on; fix: add --eval-data FILE, or drop --eval-batches")
    expect(refused(["verify", ...folded, "--eval-data", heldOut])).toContain("--eval-data: ")
    expect(refused(["verify", ...folded, "--eval-data", heldOut])).toContain("is not used by pleat verify (it compares training steps)")
    expect(refused(["train", ...oneRank.slice(0, -2), "--vocab", "20", "--eval-data", heldOut])).toMatch(
      /^pleat train: --eval-data: ".*" holds token ids up to 3\d \(the first of 20 or more at token \d+\), not all below --vocab 20; fix: use --vocab \d+ or more/,
    )
  })
})
