// Megatron-LM's argument names on `pleat train` (MegatronNames, MegatronArgs, MegatronDefaults):
// a command written in them resolves to exactly the job of the same command in pleat's names with
// Megatron-LM's defaults written out, the defaults computed here from the documented rule; presets
// and config files still win over those defaults; problems name the flags as typed; what pleat
// cannot do is refused with the fix; `--load` resumes a checkpoint when there is one; and a
// Megatron-LM argument list trains.
import { writeFileSync } from "node:fs"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as MegatronArgs from "../../src/cli/MegatronArgs.js"
import * as MegatronNames from "../../src/cli/MegatronNames.js"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import { fresh, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

type Outcome = { readonly ok: true; readonly resolved: TrainOptions.Resolved } | { readonly ok: false; readonly message: string }

const outcome = (argv: ReadonlyArray<string>): Outcome => {
  try {
    const resolved = TrainOptions.resolve(argv)
    if (resolved === "help") throw new Error("unexpected help")
    return { ok: true, resolved }
  } catch (e) {
    return { ok: false, message: String((e as Error).message) }
  }
}

const resolved = (argv: ReadonlyArray<string>): TrainOptions.Resolved => {
  const o = outcome(argv)
  if (!o.ok) throw new Error(`${argv.join(" ")}: ${o.message}`)
  return o.resolved
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b))

/** One command's choices: undefined is "not given". */
const choices = fc.record({
  tp: fc.option(fc.constantFrom(1, 2), { nil: undefined }),
  cp: fc.option(fc.constantFrom(1, 2), { nil: undefined }),
  pp: fc.option(fc.constantFrom(1, 2), { nil: undefined }),
  ep: fc.option(fc.constantFrom(1, 2, 4), { nil: undefined }),
  etp: fc.option(fc.constantFrom(1, 2), { nil: undefined }),
  hidden: fc.option(fc.constantFrom(32, 64, 96), { nil: undefined }),
  gqa: fc.constantFrom("none", "groups 2", "no groups"),
  swiglu: fc.boolean(),
  ffn: fc.option(fc.constantFrom(48, 128), { nil: undefined }),
  moeFfn: fc.option(fc.constantFrom(16, 64), { nil: undefined }),
  microBatch: fc.option(fc.constantFrom(1, 2), { nil: undefined }),
  globalBatch: fc.option(fc.constantFrom(4, 8), { nil: undefined }),
  layers: fc.constantFrom(2, 4),
  balancing: fc.constantFrom("none given", "type only", "coeff only", "both", "two"),
  disableBiasLinear: fc.boolean(),
})

type Choices = typeof choices extends fc.Arbitrary<infer T> ? T : never

const given = <T>(flag: string, value: T | undefined): Array<string> => (value === undefined ? [] : [flag, String(value)])

/** The command in Megatron-LM's names. */
const megatronArgv = (c: Choices): Array<string> => [
  ...["--num-layers", String(c.layers), "--num-experts", "4", "--seq-length", "32", "--train-iters", "3", "--num-attention-heads", "4"],
  ...given("--tensor-model-parallel-size", c.tp),
  ...given("--context-parallel-size", c.cp),
  ...given("--pipeline-model-parallel-size", c.pp),
  ...given("--expert-model-parallel-size", c.ep),
  ...given("--expert-tensor-parallel-size", c.etp),
  ...given("--hidden-size", c.hidden),
  ...(c.gqa === "none" ? [] : c.gqa === "groups 2" ? ["--group-query-attention", "--num-query-groups", "2"] : ["--group-query-attention"]),
  ...(c.swiglu ? ["--swiglu"] : []),
  ...given("--ffn-hidden-size", c.ffn),
  ...given("--moe-ffn-hidden-size", c.moeFfn),
  ...given("--micro-batch-size", c.microBatch),
  ...given("--global-batch-size", c.globalBatch),
  ...{
    "none given": [],
    "type only": ["--moe-router-load-balancing-type", "seq_aux_loss"],
    "coeff only": ["--moe-aux-loss-coeff", "0.02"],
    both: ["--moe-router-load-balancing-type", "aux_loss", "--moe-aux-loss-coeff", "1e-2"],
    two: ["--moe-router-load-balancing-type", "aux_loss", "global_aux_loss", "--moe-aux-loss-coeff", "0.01", "0.001"],
  }[c.balancing],
  ...(c.disableBiasLinear ? ["--disable-bias-linear"] : []),
]

/** The same command in pleat's names, Megatron-LM's defaults written out by the documented rule. */
const pleatArgv = (c: Choices): Array<string> => {
  const tp = c.tp ?? 1
  const cp = c.cp ?? 1
  const pp = c.pp ?? 1
  const ep = c.ep ?? 1
  const etp = c.etp ?? tp
  const attention = tp * cp
  const moe = etp * ep
  const world = ((attention * moe) / gcd(attention, moe)) * pp
  const hidden = c.hidden ?? 32
  const ffn = c.ffn ?? (c.swiglu ? Math.floor((8 * hidden) / 3 / 64) * 64 : 4 * hidden)
  const microBatch = c.microBatch ?? 1
  const aux = { "none given": "aux:0", "type only": "seq_aux:0", "coeff only": "aux:0.02", both: "aux:1e-2", two: "aux:0.01,global_aux:0.001" }[c.balancing]
  return [
    ...["--layers", String(c.layers), "--experts", "4", "--seq", "32", "--steps", "3", "--heads", "4"],
    ...["--tp", String(tp), "--cp", String(cp), "--pp", String(pp), "--ep", String(ep), "--etp", String(etp), "--world", String(world)],
    ...["--hidden", String(hidden), "--kv-heads", String(c.gqa === "none" ? 4 : c.gqa === "groups 2" ? 2 : 1)],
    ...["--ffn", String(ffn), "--moe-ffn", String(c.moeFfn ?? ffn), "--micro-batch", String(microBatch)],
    ...["--global-batch", String(c.globalBatch ?? (microBatch * world) / (tp * cp * pp)), "--aux-loss", aux],
    ...["--init-method-std", "0.02", "--norm-eps", "1e-5", "--warmup-steps", "0", "--min-lr", "0", "--adam-beta2", "0.999", "--lr-decay-style", "linear"],
    ...(c.disableBiasLinear ? [] : ["--add-bias-linear"]),
  ]
}

describe("Megatron-LM's names on pleat train", () => {
  test("the tables name real pleat settings, and no Megatron-LM name is one of pleat's own", () => {
    const pleat = Object.keys(TrainOptions.flags)
    for (const target of Object.values(MegatronNames.renamed)) expect(pleat, target).toContain(target)
    const megatron = [
      ...Object.keys(MegatronNames.renamed),
      ...Object.keys(MegatronNames.noEffect),
      ...Object.keys(MegatronNames.valued),
      ...Object.keys(MegatronNames.unsupported),
    ]
    expect(new Set(megatron).size).toBe(megatron.length)
    for (const name of megatron) expect(pleat, name).not.toContain(name)
  })

  test("a command in Megatron-LM's names is the same job as in pleat's with Megatron-LM's defaults written out", () => {
    let jobs = 0
    fc.assert(
      fc.property(choices, (c) => {
        const meg = outcome(megatronArgv(c))
        const own = outcome(pleatArgv(c))
        expect(meg.ok, `${megatronArgv(c).join(" ")}: ${meg.ok ? "" : meg.message} / ${own.ok ? "" : own.message}`).toBe(own.ok)
        if (meg.ok && own.ok) {
          jobs++
          expect(meg.resolved.setup).toEqual(own.resolved.setup)
          expect(meg.resolved.steps).toBe(own.resolved.steps)
        }
      }),
      { numRuns: 150, seed: 20261206 },
    )
    // Most draws are jobs pleat can run: the equality was checked, not only the refusals.
    expect(jobs).toBeGreaterThan(50)
  })

  test("Megatron-LM's defaults, as documented, for a command that names a few settings", () => {
    const { setup } = resolved(["--num-layers", "2", "--num-experts", "4", "--hidden-size", "96", "--swiglu"])
    expect(setup.parallel.sizes).toMatchObject({ tp: 1, cp: 1, pp: 1, ep: 1, etp: 1, dp: 1 })
    expect(setup.parallel.world).toBe(1)
    // Megatron-LM's add_bias_linear (on) gives q, k, v biases too; --disable-bias-linear keeps pleat's none.
    expect(setup.model).toMatchObject({ kvHeads: 4, ffn: 256, moeFfn: 256, normEps: 1e-5, linearBias: true, qkvBias: true })
    const unbiased = resolved(["--num-layers", "2", "--num-experts", "4", "--disable-bias-linear"]).setup.model
    expect([unbiased.linearBias, unbiased.qkvBias]).toEqual([undefined, undefined])
    expect(setup.batch).toEqual({ microBatch: 1, globalBatch: 1 })
    expect(setup.initMethodStd).toBe(0.02)
    expect(setup.auxLossCoeff).toBe(0)
    expect(setup.optimizer).toMatchObject({ beta2: 0.999 })
    // Without --swiglu, Megatron-LM's ffn is 4 x hidden; pleat's own defaults without its names.
    expect(resolved(["--num-layers", "2", "--num-experts", "4", "--hidden-size", "96"]).setup.model.ffn).toBe(384)
    expect(resolved(["--layers", "2"]).setup.parallel.sizes.tp).toBe(2)
    // --vocab-size is padded as Megatron-LM pads it: to a multiple of 128 (or the given) x tp.
    const vocab = (flags: ReadonlyArray<string>) => resolved(["--num-layers", "2", "--num-experts", "4", ...flags]).setup.model.vocab
    expect(vocab(["--vocab-size", "50257", "--tensor-model-parallel-size", "2", "--tokenizer-type", "NullTokenizer"])).toBe(50432)
    expect(vocab(["--vocab-size", "50257", "--make-vocab-size-divisible-by", "64"])).toBe(50304)
    expect(vocab(["--vocab-size", "256"])).toBe(256)
  })

  test("a --model preset and a config file win over Megatron-LM's defaults", () => {
    const preset = resolved(["--model", "mixtral-8x7b", "--scale", "64", "--num-layers", "2"]).setup.model
    const scaled = resolved(["--model", "mixtral-8x7b", "--scale", "64", "--layers", "2"]).setup.model
    expect(preset.ffn).toBe(scaled.ffn)
    expect(preset.kvHeads).toBe(scaled.kvHeads)
    const dir = fresh("megatron-config")
    const file = path.join(dir, "job.json")
    writeFileSync(file, JSON.stringify({ tp: 2, ffn: 96 }))
    const fromFile = resolved(["--config", file, "--num-layers", "2", "--num-experts", "4"]).setup
    expect(fromFile.parallel.sizes.tp).toBe(2)
    expect(fromFile.parallel.sizes.etp).toBe(2)
    expect(fromFile.model.ffn).toBe(96)
    expect(fromFile.model.moeFfn).toBe(96)
  })

  test("problems name the flags as typed", () => {
    expect(refused(["train", "--num-layers", "0"])).toMatch(/^pleat train: --num-layers: "0" is not a positive integer/)
    expect(refused(["train", "--layers", "2", "--num-layers", "3"])).toContain('"--num-layers" is given twice (also as --layers)')
    // A cross-field check (ModelConfig's) names the flag as typed as well.
    expect(refused(["train", "--num-experts", "4", "--group-query-attention", "--num-query-groups", "3"])).toMatch(/^pleat train: --num-query-groups: 3 must divide heads = 4/)
    expect(refused(["train", "--num-layers", "2", "--num-experts", "4", "--hidden-size", "16", "--swiglu"])).toMatch(/--ffn \(Megatron-LM's default\): 0/)
    expect(refused(["train", "--num-query-groups", "2"])).toContain('--num-query-groups: "2" takes effect in Megatron-LM only with --group-query-attention')
  })

  test("what pleat cannot do is refused with the fix", () => {
    expect(refused(["train", "--fp16"])).toContain("use --bf16")
    expect(refused(["train", "--split", "99990,8,2"])).toContain("splits --data-path's documents alone")
    expect(refused(["train", "--normalization", "LayerNorm"])).toContain("write --normalization RMSNorm")
    expect(refused(["train", "--hidden-dropout", "0.1"])).toContain("pleat trains without dropout")
    expect(refused(["train", "--window-size", "128,4"])).toContain("is not a causal window")
    expect(refused(["train", "--moe-router-load-balancing-type", "sinkhorn_v2"])).toContain("is not a load-balancing loss pleat has")
    expect(refused(["train", "--moe-router-load-balancing-type", "aux_loss", "seq_aux_loss", "--moe-aux-loss-coeff", "0.01"])).toContain(
      "gives 2 load-balancing types and 1 coefficients",
    )
    expect(refused(["train", "--recompute-granularity", "full", "--recompute-method", "block"])).toContain("write --recompute-method uniform")
    expect(refused(["train", "--swiglu=1"])).toContain("takes no value")
    expect(refused(["train", "--num-layers", "8", "--pipeline-model-parallel-size", "2", "--num-layers-per-virtual-pipeline-stage", "3"])).toContain(
      "does not divide the 8 layers over pp 2",
    )
    expect(refused(["train", "--num-layers-per-virtual-pipeline-stage", "2"])).toContain("needs --num-layers")
    expect(refused(["train", "--recompute-modules", "gdn_norm_out"])).toContain("names no module pleat's layers have")
    expect(refused(["train", "--tokenizer-type", "HuggingFaceTokenizer"])).toContain("give the vocabulary as --vocab-size V")
    expect(refused(["train", "--vocab-size", "100", "--vocab", "128"])).toContain("and --vocab both give the vocabulary")
    // Recipes' flags: one value accepted, others refused; no pleat equivalent, refused with the fix.
    expect(refused(["train", "--exp-avg-dtype", "bf16"])).toContain("keeps AdamW's moments in fp32")
    expect(refused(["train", "--num-distributed-optimizer-instances", "2"])).toContain("splits the distributed optimizer's state, which is off")
    expect(refused(["train", "--use-megatron-fsdp"])).toContain("not the parameters")
    expect(refused(["train", "--account-for-embedding-in-pipeline-split"])).toContain("needs --num-layers and the pipeline's size on the command line")
    expect(refused(["train", "--exit-duration-in-mins", "230"])).toContain("SIGINT stops a run early")
  })

  test("compound flags are pleat's settings", () => {
    const same = (meg: ReadonlyArray<string>, own: ReadonlyArray<string>) =>
      expect(resolved([...meg, "--num-layers", "2"]).setup).toEqual(resolved([...own, "--num-layers", "2"]).setup)
    same(["--bf16", "--window-size", "(7,0)", "--recompute-activations"], ["--precision", "bf16", "--sliding-window", "8", "--recompute", "selective"])
    same(
      ["--position-embedding-type", "yarn", "--rotary-scaling-factor", "4", "--lr-decay-style", "WSD"],
      ["--rope-type", "yarn", "--rotary-scaling-factor", "4", "--lr-decay-style", "wsd"],
    )
    same(["--recompute-granularity", "full", "--recompute-method", "uniform", "--recompute-num-layers", "1"], ["--recompute", "full"])
    same(["--recompute-granularity", "selective", "--recompute-modules", "core_attn", "moe_act"], ["--recompute", "selective", "--recompute-modules", "core_attn,moe_act"])
    // The flex dispatcher (DeepEP, HybridEP) has the all-to-all dispatcher's contract.
    same(["--moe-token-dispatcher-type", "flex", "--moe-flex-dispatcher-backend", "deepep", "--moe-deepep-num-sms", "20"], ["--dispatcher", "alltoall"])
    same(["--moe-token-dispatcher-type", "allgather", "--attention-backend", "flash", "--delay-wgrad-compute"], ["--dispatcher", "allgather"])
    // layernorm is taken without effect: none left recomputes nothing.
    same(["--recompute-granularity", "selective", "--recompute-modules", "moe", "layernorm"], ["--recompute", "selective", "--recompute-modules", "moe"])
    same(["--recompute-granularity", "selective", "--recompute-modules", "layernorm"], ["--recompute", "selective", "--recompute-modules", "none"])
    same(
      ["--recompute-granularity", "selective", "--recompute-modules", "mla_up_proj", "moe_act", "layernorm"],
      ["--recompute", "selective", "--recompute-modules", "mla_up_proj,moe_act"],
    )
    // Megatron-LM's older form of the virtual stages: (layers / pp) / N (with a global batch of 2
    // micro-batches, as the interleaved schedule needs pp of them at least).
    const vpp = (flags: ReadonlyArray<string>) => resolved(["--num-experts", "4", "--world", "2", "--global-batch-size", "2", ...flags]).setup.parallel
    expect(vpp(["--num-layers", "8", "--pipeline-model-parallel-size", "2", "--num-layers-per-virtual-pipeline-stage", "2"])).toEqual(
      vpp(["--num-layers", "8", "--pp", "2", "--vpp", "2"]),
    )
    expect(vpp(["--num-layers", "8", "--pipeline-model-parallel-size", "2", "--num-layers-per-virtual-pipeline-stage", "4"]).vpp).toBeUndefined()
    same(["--moe-router-load-balancing-type", "none", "--moe-z-loss-coeff", "1e-3"], ["--aux-loss", "none", "--z-loss-coeff", "1e-3"])
    same(["--moe-router-load-balancing-type", "sinkhorn"], ["--sinkhorn", "--aux-loss", "none"])
    same(["--moe-router-load-balancing-type", "sinkhorn", "--moe-aux-loss-coeff", "0"], ["--sinkhorn", "--aux-loss", "none"])
    same(
      ["--moe-router-topk-limited-devices", "2", "--expert-model-parallel-size", "4", "--moe-router-topk", "4"],
      ["--num-groups", "4", "--group-topk", "2", "--ep", "4", "--topk", "4"],
    )
    same(["--moe-input-jitter-eps", "0.01"], ["--input-jitter-eps", "0.01"])
    same(["--moe-router-force-biased", "-1"], ["--force-biased", "-1"])
    same(["--moe-apply-probs-on-input", "--moe-router-topk", "1", "--moe-router-pre-softmax"], ["--probs-at", "input", "--topk", "1", "--pre-softmax"])
    same(
      ["--moe-router-load-balancing-type", "quantile_balancing", "--moe-router-quantile-balancing-ema", "0.9"],
      ["--quantile-balancing", "--aux-loss", "none", "--quantile-balancing-ema", "0.9"],
    )
    const t = MegatronArgs.translate(["--swiglu", "--log-interval", "10", "--num-layers", "2"])
    expect(t.megatron).toBe(true)
    expect(t.noEffect).toEqual(["--swiglu", "--log-interval 10"])
    expect(t.unfollowed.join("; ")).toContain("LayerNorm")
    expect(MegatronArgs.translate(["--lr", "0.001", "--seed", "3"]).megatron).toBe(false)
  })

  test("--load resumes the checkpoint in its directory, and starts afresh where there is none", async () => {
    const dir = path.join(fresh("megatron-load"), "ckpt")
    const model = ["--num-layers", "2", "--num-experts", "4", "--seq-length", "16", "--lr-decay-iters", "4"]
    const first = outcome([...model, "--train-iters", "2", "--load", dir])
    expect(first.ok && first.resolved.resume).toBeUndefined()
    const trained = await run(["train", ...model, "--train-iters", "2", "--save", dir, "--load", dir])
    expect(trained.status, trained.err).toBe(0)
    expect(trained.err).toContain(`--load ${dir} holds no checkpoint`)
    // A directory of files pleat did not write (a Megatron-LM checkpoint) is never trained over.
    const foreign = fresh("megatron-foreign")
    writeFileSync(path.join(foreign, "latest_checkpointed_iteration.txt"), "100")
    expect(refused(["train", ...model, "--load", foreign])).toContain("holds no checkpoint of pleat's (Megatron-LM's own are not read)")
    const again = resolved([...model, "--train-iters", "4", "--save", dir, "--load", dir])
    expect(again.resume).toBe(dir)
    expect(again.first).toBe(2)
  }, 120_000)

  test("--data-path PREFIX trains on PREFIX.bin with the dtype PREFIX.idx names; --train-data-path blends are --data-blend; other blends, other dtypes and missing files are refused", () => {
    const dir = fresh("megatron-data")
    /** A Megatron-LM indexed dataset: the index's header (dtype `code`) and `ids` in .bin. */
    const dataset = (name: string, code: number, ids: ArrayLike<number>, bytes: 2 | 4) => {
      const prefix = path.join(dir, name)
      const header = Buffer.alloc(34)
      header.write("MMIDIDX\0\0", 0, "latin1")
      header.writeBigUInt64LE(1n, 9)
      header.writeUInt8(code, 17)
      header.writeBigUInt64LE(1n, 18)
      header.writeBigUInt64LE(2n, 26)
      writeFileSync(`${prefix}.idx`, header)
      writeFileSync(`${prefix}.bin`, Buffer.from(bytes === 2 ? new Uint16Array(ids).buffer : new Int32Array(ids).buffer))
      return prefix
    }
    const ids = Array.from({ length: 400 }, (_, k) => (k * 7) % 32)
    const small = dataset("small", 8, ids, 2)
    const large = dataset("large", 4, ids, 4)
    const model = ["--num-layers", "2", "--num-experts", "4"]
    expect(resolved([...model, "--data-path", small, "--valid-data-path", small]).setup).toEqual(
      resolved([...model, "--data", `${small}.bin`, "--eval-data", `${small}.bin`, "--data-dtype", "uint16"]).setup,
    )
    expect(resolved([...model, "--train-data-path", "1.0", large]).setup).toEqual(resolved([...model, "--data", `${large}.bin`, "--data-dtype", "uint32"]).setup)
    expect(refused(["train", "--data-path", "0.5", small, "0.5", large])).toContain("blends several datasets, which pleat reads only as training data read whole")
    // --train-data-path's blend (read whole) is --data-blend; its datasets of one dtype.
    const other = dataset(
      "other",
      8,
      ids.map((x) => (x + 3) % 32),
      2,
    )
    expect(resolved([...model, "--train-data-path", "0.25", small, "0.75", other]).setup).toEqual(
      resolved([...model, "--data-blend", `0.25 ${small}.bin 0.75 ${other}.bin`, "--data-dtype", "uint16"]).setup,
    )
    expect(refused(["train", "--train-data-path", "0.5", small, "0.5", large])).toContain("holds datasets of different dtypes (uint16, uint32), which pleat reads alike")
    expect(refused(["train", "--train-data-path", "0.5", small, "x", large])).toContain("is not pairs of a positive weight and a dataset prefix")
    expect(refused(["train", "--data-path", small, "--valid-data-path", large])).toContain("stores its ids otherwise than the training data")
    expect(refused(["train", "--data-path", path.join(dir, "none")])).toMatch(/--data-path: ".*none" has no .*none\.idx/)
    expect(refused(["train", "--data-path", dataset("bytes", 1, [1, 2], 2)])).toContain("stores its ids as uint8, which pleat does not read")
    writeFileSync(`${small}.idx`, "not an index at all, just some text")
    expect(refused(["train", "--data-path", small])).toContain("is not a Megatron-LM indexed dataset's")
  })

  test("a Megatron-LM argument list (Megatron-LM's Mixtral example, scaled down) trains and says what took no effect", async () => {
    const args = [
      ...["--use-mcore-models", "--disable-bias-linear", "--seq-length", "32", "--max-position-embeddings", "32768", "--num-layers", "2"],
      ...["--hidden-size", "64", "--ffn-hidden-size", "128", "--num-attention-heads", "4", "--init-method-std", "0.01", "--attention-dropout", "0.0"],
      ...["--hidden-dropout", "0.0", "--normalization", "RMSNorm", "--position-embedding-type", "rope", "--swiglu", "--untie-embeddings-and-output-weights"],
      ...["--group-query-attention", "--num-query-groups", "2", "--no-masked-softmax-fusion", "--no-position-embedding", "--rotary-base", "1000000"],
      ...["--num-experts", "8", "--moe-router-topk", "2", "--moe-router-load-balancing-type", "aux_loss", "--moe-aux-loss-coeff", "1e-2", "--moe-grouped-gemm"],
      ...["--moe-token-dispatcher-type", "alltoall", "--overlap-param-gather", "--overlap-grad-reduce", "--micro-batch-size", "1", "--global-batch-size", "8"],
      ...["--lr", "1e-3", "--train-iters", "4", "--lr-decay-iters", "4", "--lr-decay-style", "cosine", "--min-lr", "1.0e-5", "--weight-decay", "0.1"],
      ...["--lr-warmup-iters", "1", "--clip-grad", "1.0", "--bf16", "--tensor-model-parallel-size", "1", "--pipeline-model-parallel-size", "2"],
      ...["--expert-model-parallel-size", "4", "--use-distributed-optimizer", "--sequence-parallel", "--log-interval", "1", "--vocab", "64"],
    ]
    const trained = await run(["train", ...args, "--log", "json"])
    expect(trained.status, trained.err).toBe(0)
    expect(trained.err).toContain("no effect here")
    expect(trained.err).toContain("--moe-grouped-gemm")
    expect(trained.err).not.toContain("Megatron-LM's defaults not followed")
    const start = JSON.parse(trained.out.split("\n")[0] as string) as { world: number; sizes: { pp: number; ep: number; dp: number } }
    expect(start.world).toBe(8)
    expect(start.sizes).toMatchObject({ pp: 2, ep: 4, dp: 4 })
    // Flags newer recipes add (DeepSeek-V3's, Qwen3's) train the same job, each said to take no effect.
    const recipe = [
      ...["--use-precision-aware-optimizer", "--main-grads-dtype", "fp32", "--exp-avg-dtype", "fp32", "--exp-avg-sq-dtype", "fp32", "--rotary-percent", "1.0"],
      ...["--cross-entropy-fusion-impl", "te", "--manual-gc-interval", "5", "--check-for-nan-in-loss-and-grad", "--no-save-optim", "--cuda-graph-impl", "none"],
    ]
    const withRecipe = await run(["train", ...args, ...recipe, "--log", "json"])
    expect(withRecipe.status, withRecipe.err).toBe(0)
    expect(stepLosses(withRecipe.out)).toEqual(stepLosses(trained.out))
    // --rotary-percent is pleat's own setting too (partial RoPE): at 1.0 the same job, not a flag without effect.
    for (const flag of recipe.filter((a) => a.startsWith("--") && a !== "--rotary-percent")) expect(withRecipe.err).toContain(flag)
  }, 120_000)
})
