// The `pleat plan` contract and the planner's invariants: the JSON keys; candidates sorted by
// MFU; each a valid mapping that fits training's checks and the GPU's memory; the step the sum of
// its terms and MFU Megatron's FLOPs over step x GPUs x peak; fixed flags honoured (all of them:
// one prediction); recomputation trades time for memory; Megatron's formula against a count by
// component; bad input and a model that fits nothing exit 2 with one line; 16,384 GPUs plan.
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Result from "effect/Result"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Cluster from "../../src/plan/Cluster.js"
import * as MemoryModel from "../../src/plan/MemoryModel.js"
import * as ModelFlops from "../../src/plan/ModelFlops.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelPresets from "../../src/train/ModelPresets.js"

const runPlan = (args: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = Cli.run(["plan", ...args], io)
  return { status, out: io.out, err: io.err, files: io.files }
}

const candidateKeys = ["tp", "cp", "pp", "vpp", "ep", "etp", "dp", "edp", "order", "microBatch", "memoryGiB", "stepSeconds", "mfu", "breakdown"]

interface CandidateJson {
  [k: string]: unknown
  tp: number
  cp: number
  pp: number
  vpp: number
  ep: number
  etp: number
  dp: number
  edp: number
  order: string
  microBatch: number
  recompute: "none" | "selective" | "full"
  memoryGiB: number
  stepSeconds: number
  mfu: number
  breakdown: Record<string, number>
}

const presetsThatPlanSmall: ReadonlyArray<ModelPresets.Name> = ["mixtral-8x7b", "mixtral-8x22b", "qwen2-57b-a14b", "mixtral-8x22b-g8t8"]

describe("pleat plan --json", () => {
  test("random jobs: keys, order, validity, memory, step = sum of terms, MFU = Megatron FLOPs / (step x GPUs x peak)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...presetsThatPlanSmall),
        fc.constantFrom(32, 64, 128, 256),
        fc.constantFrom(128, 256, 512),
        fc.constantFrom("dgx-h100", "dgx-h200"),
        (model, gpus, globalBatch, clusterName) => {
          const r = runPlan(["--model", model, "--gpus", String(gpus), "--global-batch", String(globalBatch), "--cluster", clusterName, "--top", "50", "--json"])
          const cluster = Cluster.presets[clusterName] as Cluster.Cluster
          if (r.status === 2) {
            expect(r.err).toMatch(/^pleat plan: --gpus: \d+ fits no mapping of .* needs [\d.]+ GB more; fix: /)
            return
          }
          expect(r.status).toBe(0)
          const doc = JSON.parse(r.out) as { model: string; gpus: number; cluster: string; candidates: Array<CandidateJson> }
          expect([doc.model, doc.gpus, doc.cluster]).toEqual([model, gpus, clusterName])
          expect(doc.candidates.length).toBeGreaterThan(0)
          const m = { ...ModelPresets.model(model, 1), seq: 4096 }
          const flops = ModelFlops.perStep(m, 4096, globalBatch)
          for (const [i, c] of doc.candidates.entries()) {
            for (const k of candidateKeys) expect(c).toHaveProperty(k)
            if (i > 0) expect(c.mfu).toBeLessThanOrEqual(doc.candidates[i - 1]?.mfu as number)
            const config = ParallelConfig.validate({ world: gpus, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, vpp: c.vpp > 1 ? c.vpp : undefined, order: c.order })
            expect(Result.isSuccess(config)).toBe(true)
            if (Result.isSuccess(config)) {
              expect(config.success.sizes.dp).toBe(c.dp)
              expect(config.success.sizes.edp).toBe(c.edp)
              expect(ModelConfig.problemOf(m, { microBatch: c.microBatch, globalBatch }, config.success)).toBeUndefined()
            }
            expect(c.memoryGiB * 2 ** 30).toBeLessThanOrEqual(cluster.memoryGB * 1e9 * 1.000001)
            const sum = Object.values(c.breakdown).reduce((a, b) => a + b, 0)
            expect(Math.abs(sum - c.stepSeconds) / c.stepSeconds).toBeLessThan(1e-4)
            expect(Math.abs(flops / (c.stepSeconds * gpus * cluster.peakTflops * 1e12) - c.mfu) / c.mfu).toBeLessThan(1e-4)
          }
          // Each mapping once.
          const keys = doc.candidates.map((c) => `${c.tp},${c.cp},${c.pp},${c.ep},${c.etp}`)
          expect(new Set(keys).size).toBe(keys.length)
        },
      ),
      { numRuns: 12 },
    )
  })

  test("fixed flags fix their dimension; all of them give one prediction", () => {
    const some = runPlan(["--model", "mixtral-8x22b", "--gpus", "128", "--global-batch", "256", "--ep", "4", "--pp", "8", "--top", "20", "--json"])
    const list = (JSON.parse(some.out) as { candidates: Array<CandidateJson> }).candidates
    expect(list.length).toBeGreaterThan(1)
    for (const c of list) expect([c.ep, c.pp]).toEqual([4, 8])
    const all = ["--tp", "2", "--cp", "1", "--pp", "8", "--vpp", "7", "--ep", "8", "--etp", "1", "--micro-batch", "1", "--recompute", "selective"]
    const one = runPlan(["--model", "mixtral-8x22b", "--gpus", "128", "--global-batch", "256", ...all, "--json"])
    const only = (JSON.parse(one.out) as { candidates: Array<CandidateJson> }).candidates
    expect(only.map((c) => [c.tp, c.cp, c.pp, c.vpp, c.ep, c.etp, c.microBatch, c.recompute])).toEqual([[2, 1, 8, 7, 8, 1, 1, "selective"]])
  })

  test("recomputation lowers memory and lengthens the step for the same mapping", () => {
    const at = (recompute: string) =>
      (
        JSON.parse(
          runPlan([
            "--model",
            "qwen2-57b-a14b",
            "--gpus",
            "64",
            "--global-batch",
            "256",
            "--tp",
            "2",
            "--cp",
            "1",
            "--pp",
            "4",
            "--ep",
            "8",
            "--etp",
            "1",
            "--vpp",
            "1",
            "--micro-batch",
            "1",
            "--recompute",
            recompute,
            "--json",
          ]).out,
        ) as { candidates: Array<CandidateJson> }
      ).candidates[0] as CandidateJson
    const [none, selective, full] = [at("none"), at("selective"), at("full")]
    expect(none.memoryGiB).toBeGreaterThan(selective.memoryGiB)
    expect(selective.memoryGiB).toBeGreaterThan(full.memoryGiB)
    expect(none.stepSeconds).toBeLessThan(selective.stepSeconds)
    expect(selective.stepSeconds).toBeLessThan(full.stepSeconds)
  })

  test("a sliding window scales the attention core's time by the share of pairs it keeps (the layers that keep it), and nothing else; sinks take no time, biases only their parameters'", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-plan-window-"))
    const model = { hidden: 4096, layers: 32, heads: 32, kvHeads: 8, experts: 8, topk: 2, moeFfn: 14336, vocab: 32000 }
    const at = (extra: Record<string, number | string | boolean>) => {
      const file = path.join(dir, `m${Object.keys(extra).length}.json`)
      writeFileSync(file, JSON.stringify({ ...model, ...extra }))
      const fixed = ["--gpus", "32", "--global-batch", "64", "--seq", "8192", "--tp", "2", "--cp", "2", "--pp", "2", "--vpp", "1", "--ep", "8", "--etp", "1"]
      const flags = ["--model", file, ...fixed, "--micro-batch", "1", "--recompute", "none"]
      return (JSON.parse(runPlan([...flags, "--json"]).out) as { candidates: Array<CandidateJson & { breakdown: Record<string, number> }> }).candidates[0] as CandidateJson & {
        breakdown: Record<string, number>
      }
    }
    const [full, windowed, alternating] = [at({}), at({ slidingWindow: 1024 }), at({ slidingWindow: 1024, windowAttnSkipFreq: 4 })]
    const share = ((1024 * 1025) / 2 + (8192 - 1024) * 1024) / ((8192 * 8193) / 2)
    expect((windowed.breakdown.attention as number) / (full.breakdown.attention as number)).toBeCloseTo(share, 2)
    // Every 4th layer attends to the whole context: 24 of the 32 layers keep the window.
    expect((alternating.breakdown.attention as number) / (full.breakdown.attention as number)).toBeCloseTo((24 * share + 8) / 32, 2)
    for (const term of ["gemm", "ep", "tp"]) expect(windowed.breakdown[term]).toBe(full.breakdown[term])
    // Softmax sinks are taken and cost nothing the planner counts.
    expect(at({ softmaxType: "learnable" }).breakdown).toEqual(full.breakdown)
    // Biases are parameters: memory, their gradients' sync and their optimizer step; no compute term the planner counts.
    const biased = at({ qkvBias: true, linearBias: true, routerBias: true })
    for (const term of ["gemm", "attention", "elementwise", "ep", "tp", "cp"]) expect(biased.breakdown[term], term).toBe(full.breakdown[term])
    for (const term of ["dp", "optimizer"]) expect(biased.breakdown[term] as number, term).toBeGreaterThan(full.breakdown[term] as number)
    expect(biased.memoryGiB).toBeGreaterThan(full.memoryGiB)
    // MFU's model FLOPs are Megatron's (causal attention, window or not): the shorter step alone raises it.
    expect(windowed.mfu / full.mfu).toBeCloseTo(full.stepSeconds / windowed.stepSeconds, 2)
  })

  test("more micro-batches in flight (interleaving) cost memory", () => {
    const job = {
      modelName: "m",
      model: ModelPresets.model("mixtral-8x22b", 1),
      cluster: Cluster.presets["dgx-h100"] as Cluster.Cluster,
      gpus: 128,
      seq: 4096,
      globalBatch: 256,
      precision: "bf16" as const,
    }
    const base = { tp: 2, cp: 1, pp: 8, vpp: 1, ep: 8, etp: 1, dp: 8, edp: 2, order: "tp-cp-ep-dp-pp", microBatch: 1, recompute: "none" as const }
    expect(MemoryModel.ofMapping(job, { ...base, vpp: 7 }).activations).toBeGreaterThan(MemoryModel.ofMapping(job, base).activations)
  })
})

describe("Megatron's FLOPs formula", () => {
  test("equals a count by component: 3 x (2 x weights + causal attention) per token, every layer", () => {
    fc.assert(
      fc.property(fc.constantFrom(...ModelPresets.names), fc.integer({ min: 1, max: 64 }), fc.constantFrom(1024, 4096, 8192), (name, batch, seq) => {
        const m = ModelPresets.model(name, 1)
        const h = m.hidden
        // Query and key/value widths: heads x head width (h / heads unless the model sets its own).
        const d = m.headDim ?? h / m.heads
        const [q, kv] = [m.heads * d, m.kvHeads * d]
        let attentionWeights = h * (q + 2 * kv) + q * h
        let core = 2 * seq * q
        const s = m.mla
        if (s !== undefined) {
          // Multi-latent attention (Megatron counts each latent norm as one multiply-add per width).
          const qk = m.heads * (s.qkHeadDim + s.qkPosEmbHeadDim)
          const query = s.qLoraRank > 0 ? h * s.qLoraRank + s.qLoraRank + s.qLoraRank * qk : h * qk
          attentionWeights = query + h * (s.kvLoraRank + s.qkPosEmbHeadDim) + s.kvLoraRank + s.kvLoraRank * m.heads * (s.qkHeadDim + s.vHeadDim) + m.heads * s.vHeadDim * h
          core = seq * m.heads * (s.qkHeadDim + s.qkPosEmbHeadDim + s.vHeadDim)
        }
        // The first denseFirst layers dense, then every moeEvery-th MoE (activated experts only).
        const moe = (l: number) => l >= (m.denseFirst ?? 0) && (l - (m.denseFirst ?? 0)) % m.moeEvery === 0
        let layers = 0
        for (let l = 0; l < m.layers; l++) layers += 2 * attentionWeights + 2 * 3 * h * (moe(l) ? m.moeFfn * m.topk + (m.sharedExpertFfn ?? 0) : m.ffn) + core
        const perTokenForward = layers + 2 * h * m.vocab
        const byComponent = 3 * batch * seq * perTokenForward
        expect(Math.abs(ModelFlops.perStep(m, seq, batch) - byComponent) / byComponent).toBeLessThan(1e-9)
      }),
    )
  })
})

describe("pleat plan: bad input and models that fit nothing exit 2 with one line", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "pleat-plan-"))
  const file = (name: string, text: string) => {
    const p = path.join(dir, name)
    writeFileSync(p, text)
    return p
  }
  const cases: ReadonlyArray<[string, ReadonlyArray<string>, RegExp]> = [
    ["unknown preset", ["--model", "gpt-5", "--gpus", "8", "--global-batch", "8"], /--model: "gpt-5" is neither a model preset nor a \.json file; fix: use one of mixtral-8x7b/],
    ["missing --gpus", ["--model", "mixtral-8x7b", "--global-batch", "8"], /--gpus: \(not given\) is required/],
    ["missing --global-batch", ["--model", "mixtral-8x7b", "--gpus", "8"], /--global-batch: \(not given\) is required/],
    ["bad precision", ["--model", "mixtral-8x7b", "--gpus", "8", "--global-batch", "8", "--precision", "fp4"], /--precision: "fp4" is not allowed; fix: use one of bf16, fp8/],
    ["unknown cluster", ["--model", "mixtral-8x7b", "--gpus", "8", "--global-batch", "8", "--cluster", "tpu"], /--cluster: "tpu" is neither a cluster preset/],
    ["no mapping fits", ["--model", "llama3-8x70b", "--gpus", "8", "--global-batch", "64"], /--gpus: 8 fits no mapping of llama3-8x70b .* needs [\d.]+ GB more/],
    ["no valid mapping", ["--model", "mixtral-8x7b", "--gpus", "3", "--global-batch", "8"], /--gpus: 3 allows no valid mapping of mixtral-8x7b/],
  ]
  for (const [what, args, message] of cases) {
    test(what, () => {
      const r = runPlan(args)
      expect(r.status).toBe(2)
      expect(r.err.trim().split("\n")).toHaveLength(1)
      expect(r.err).toMatch(message)
    })
  }

  test("model and cluster files: decoded, and an unknown or missing key named", () => {
    const model = file("tiny-moe.json", JSON.stringify({ hidden: 1024, layers: 8, heads: 16, kvHeads: 4, experts: 8, topk: 2, moeFfn: 2816, vocab: 32000, seq: 2048 }))
    const cluster = file("small.json", JSON.stringify({ gpusPerNode: 4, memoryGB: 40, peakTflops: 312, nvlinkGBps: 600, nicsPerNode: 4, nicGbps: 200 }))
    const ok = runPlan(["--model", model, "--cluster", cluster, "--gpus", "16", "--global-batch", "64", "--json"])
    expect(ok.status).toBe(0)
    const doc = JSON.parse(ok.out) as { model: string; cluster: string; seq: number; candidates: Array<CandidateJson> }
    expect([doc.model, doc.cluster, doc.seq]).toEqual(["tiny-moe", "small", 2048])
    const typo = file("typo.json", JSON.stringify({ hidden: 1024, layers: 8, heads: 16, experts: 8, topk: 2, moeFfn: 2816, vocab: 32000, hiden: 3 }))
    const bad = runPlan(["--model", typo, "--gpus", "16", "--global-batch", "64", "--seq", "2048"])
    expect(bad.status).toBe(2)
    expect(bad.err).toMatch(/--model: ".*typo\.json" has the unknown key "hiden"/)
    const lacking = file("lacking.json", JSON.stringify({ hidden: 1024, layers: 8, heads: 16, experts: 8, topk: 2, moeFfn: 2816 }))
    const missing = runPlan(["--model", lacking, "--gpus", "16", "--global-batch", "64", "--seq", "2048"])
    expect(missing.status).toBe(2)
    expect(missing.err).toMatch(/lacks the key "vocab"/)
  })

  test("--svg never replaces the model or cluster file the plan reads (by any path to it)", () => {
    const model = file("model.json", JSON.stringify({ hidden: 1024, layers: 8, heads: 16, experts: 8, topk: 2, moeFfn: 2816, vocab: 32000, seq: 2048 }))
    const cluster = file("cluster.json", JSON.stringify({ gpusPerNode: 8, memoryGB: 80, peakTflops: 989.5, nvlinkGBps: 900, nicsPerNode: 8, nicGbps: 400 }))
    const flags = ["--model", model, "--cluster", cluster, "--gpus", "16", "--global-batch", "64"]
    for (const [svg, reader] of [
      [model, "--model"],
      [path.join(dir, ".", "cluster.json"), "--cluster"],
    ] as const) {
      const r = runPlan([...flags, "--svg", svg])
      expect(r.status).toBe(2)
      expect(r.err.trim()).toBe(`pleat plan: --svg: ${JSON.stringify(svg)} is the file ${reader} reads (writing it would replace it); fix: write to a file of its own`)
      expect(r.files.size).toBe(0)
    }
    expect(runPlan([...flags, "--svg", path.join(dir, "plan.svg")]).status).toBe(0)
  })

  test("--svg draws the best mapping's folding", () => {
    const svg = path.join(dir, "best.svg")
    const r = runPlan(["--model", "mixtral-8x22b", "--gpus", "128", "--global-batch", "256", "--svg", svg])
    expect(r.status).toBe(0)
    expect(r.files.get(svg)).toMatch(/^<svg[\s\S]*<\/svg>\s*$/)
    expect(r.out).toMatch(/why #1 \(tp \d+ cp \d+ pp \d+/)
  })
})

describe("pleat plan at scale", () => {
  test("16,384 GPUs: every mapping weighed, the best listed (timed in bench, not here)", () => {
    const r = runPlan(["--model", "mixtral-8x22b", "--gpus", "16384", "--global-batch", "8192", "--json"])
    expect(r.status).toBe(0)
    const doc = JSON.parse(r.out) as { mappingsWeighed: number; candidates: Array<CandidateJson> }
    expect(doc.mappingsWeighed).toBeGreaterThan(100_000)
    expect(doc.candidates[0]?.dp).toBeGreaterThan(1)
    // Progress on stderr (one line per tenth of the search on a pipe), up to the last pair.
    const lines = r.err.trim().split("\n")
    expect(lines.length).toBeGreaterThan(2)
    const [, total] = /tp-cp pair \d+\/(\d+) /.exec(lines[0] ?? "") ?? []
    expect(lines.at(-1)).toContain(`tp-cp pair ${total}/${total} weighing the mappings of 16384 GPUs`)
  })
})

describe("pleat plan: a model that cannot work under any mapping is named as such", () => {
  test("a model file whose heads do not divide hidden, or whose top-k exceeds its experts", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-plan-model-"))
    const write = (name: string, fields: Record<string, number>) => {
      const p = path.join(dir, name)
      writeFileSync(p, JSON.stringify({ hidden: 1024, layers: 4, heads: 16, experts: 8, topk: 2, moeFfn: 256, vocab: 1000, seq: 1024, ...fields }))
      return p
    }
    const heads = runPlan(["--model", write("heads.json", { hidden: 1000 }), "--gpus", "8", "--global-batch", "8"])
    expect(heads.status).toBe(2)
    expect(heads.err).toMatch(/^pleat plan: --model heads: hidden: 1000 is not divisible by heads = 16; fix: /)
    const topk = runPlan(["--model", write("topk.json", { topk: 9 }), "--gpus", "8", "--global-batch", "8"])
    expect(topk.status).toBe(2)
    expect(topk.err).toMatch(/topk: 9 is larger than experts = 8/)
  })
})
