/**
 * TrainOptions: the flags shared by `pleat train` and `pleat verify`, turned into a checked job
 * before any work starts.
 *
 * The settings, their defaults and their decoding are RunConfig's (defaults < --config
 * FILE.json < flags). Here: reading the config file, the cross-field checks of the mapping
 * (ParallelConfig) and the model (ModelConfig) with their errors renamed to the flags the user
 * typed, the outputs (--save goes only into a new path, an empty directory or one pleat wrote;
 * --trace is a file in a writable place) and the checkpoint to resume (it must be complete,
 * undamaged, and of this model, seed and dtype). Every problem is a BadInput: one line, exit
 * status 2.
 */
import * as Result from "effect/Result"
import * as ConfigError from "../errors/ConfigError.js"
import * as RecomputeModules from "../model/RecomputeModules.js"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as Partition from "../pipeline/Partition.js"
import * as PipelineLayout from "../pipeline/PipelineLayout.js"
import * as Trace from "../runtime/Trace.js"
import * as AuxLossSpec from "../moe/AuxLossSpec.js"
import type * as MoeSettings from "../moe/MoeSettings.js"
import * as DistributedOptimizer from "../train/DistributedOptimizer.js"
import * as Blend from "../train/Blend.js"
import * as Checkpoint from "../train/Checkpoint.js"
import type * as HeldOut from "../train/HeldOut.js"
import * as InitMethod from "../train/InitMethod.js"
import * as ModelConfig from "../train/ModelConfig.js"
import * as Optimizer from "../train/Optimizer.js"
import * as TokenFile from "../train/TokenFile.js"
import type * as RankTrainer from "../train/RankTrainer.js"
import * as ActivationFlags from "./ActivationFlags.js"
import * as BackendChecks from "./BackendChecks.js"
import * as BadInput from "./BadInput.js"
import * as Flags from "./Flags.js"
import * as LatentFlags from "./LatentFlags.js"
import * as LayerPattern from "./LayerPattern.js"
import * as MegatronArgs from "./MegatronArgs.js"
import * as DefinitionFlag from "./DefinitionFlag.js"
import * as DataRange from "./DataRange.js"
import * as DocumentFlags from "./DocumentFlags.js"
import * as RoutingFlags from "./RoutingFlags.js"
import * as JsonFile from "./JsonFile.js"
import * as RunOutputs from "./RunOutputs.js"
import * as RunChecks from "./RunChecks.js"
import * as RunConfig from "./RunConfig.js"

/**
 * Flags of the training commands.
 * @category configuration
 */
export const flags: Readonly<Record<string, Flags.FlagSpec>> = {
  config: { kind: "string", placeholder: "FILE", help: "a JSON object with any of these settings as keys (flags override it)" },
  ...RunConfig.flags,
  world: {
    ...RunConfig.flags.world,
    help: `${RunConfig.flags.world.help}; one process hosts at most ${BackendChecks.maxRanks.local} on local, ${BackendChecks.maxRanks.threads} on threads`,
  },
  help: { kind: "boolean", help: "show this help" },
}

/**
 * Everything a training command needs, checked.
 * @category models
 */
export interface Resolved {
  readonly setup: RankTrainer.TrainSetup
  readonly steps: number
  readonly backend: RunConfig.RunConfig["backend"]
  /** threads backends: the most worker threads (undefined: one per rank up to the cores). */
  readonly workers: number | undefined
  readonly log: RunConfig.RunConfig["log"]
  readonly logLevel: RunConfig.RunConfig["log-level"]
  readonly save: string | undefined
  /** Also a checkpoint every this many steps (with save). */
  readonly saveEvery: number | undefined
  /** Complete checkpoints kept in the save directory. */
  readonly keep: number
  readonly resume: string | undefined
  readonly trace: string | undefined
  /** --trace-steps: the steps the trace records, counting from 1 (all when undefined). */
  readonly traceSteps: Trace.StepWindow | undefined
  /** --definition as written (for messages), when a model of the user's own is trained. */
  readonly definitionText: string | undefined
  /** The step the run starts from (the resumed checkpoint's, else 0). */
  readonly first: number
  /** With --eval-data: evaluate every this many steps as well as after the last. */
  readonly evalEvery: number | undefined
  /** Lines about Megatron-LM's names on the command line (what took no effect, what differs). */
  readonly notices: ReadonlyArray<string>
  /** A ConfigError of the run (a damaged --resume found by its ranks) with the field as the user gave it (RunConfig.explain). */
  readonly explain: (error: ConfigError.ConfigError) => ConfigError.ConfigError
}

/** The config file as a layer, or the problem that keeps it from being one. */
const readConfig = (file: string): RunConfig.FileLayer | ConfigError.ConfigError => {
  const values = JsonFile.readObject("--config", file, 'the settings as one JSON object, e.g. {"steps": 10}')
  return ConfigError.isConfigError(values) ? values : { file, values }
}

/** Runs a cross-field check, rethrowing its ConfigError renamed for the command line. */
const explained = <A>(decoded: RunConfig.Decoded, check: () => A): A => {
  try {
    return check()
  } catch (error) {
    if (ConfigError.isConfigError(error)) throw new BadInput.BadInput({ problems: [RunConfig.explain(error, decoded)] })
    throw error
  }
}

/**
 * The layers of every pipeline stage and the vpp of --pipeline-layout (PipelineLayout), or
 * undefined without it; a ConfigError where it does not fit the model or contradicts --vpp. A
 * layout of pp stages is not interleaved (vpp none).
 */
const layoutOf = (c: RunConfig.RunConfig): { readonly stageLayers: ReadonlyArray<number>; readonly vpp: number | undefined } | undefined => {
  const text = c["pipeline-layout"]
  if (text === undefined) return undefined
  // Refused before the layout is read, naming it as written.
  if (c["first-stage-layers"] !== undefined || c["last-stage-layers"] !== undefined) throw Partition.layoutWithEnds(text)
  const parsed = PipelineLayout.parse(text, c.pp, c.layers, c["mtp-num-layers"] ?? 0)
  if (Result.isFailure(parsed)) throw parsed.failure
  const { stageLayers, vpp } = parsed.success
  if (c.vpp !== undefined && c.vpp !== vpp)
    throw ConfigError.make("vpp", c.vpp, `contradicts --pipeline-layout, whose ${stageLayers.length} stages over pp ${c.pp} make vpp ${vpp}`, "leave out --vpp: the layout sets it")
  return { stageLayers, vpp: vpp === 1 ? c.vpp : vpp }
}

/** The token file of --data, checked against the model (or undefined: the synthetic language); throws a ConfigError. */
const dataFile = (c: RunConfig.RunConfig, sources: RunConfig.Decoded["sources"]): Blend.Corpus | undefined => {
  if (c.data === undefined && c["data-blend"] === undefined && c["eval-data"] === undefined && sources["data-dtype"]?._tag !== "default")
    throw ConfigError.make("data-dtype", c["data-dtype"], "says how --data stores its ids, but there is no --data", "add --data FILE, or drop --data-dtype")
  const orphan = DataRange.withoutFile(c)
  if (orphan !== undefined) throw orphan
  const blend = c["data-blend"]
  if (blend === undefined) return c.data === undefined ? undefined : inspected("data", c.data, c)
  if (c.data !== undefined) throw ConfigError.make("data-blend", blend, "and --data both give the training data", 'give one: --data FILE, or --data-blend "W FILE W FILE ..."')
  const pairs = Blend.pairsOf(blend.trim().split(/\s+/))
  if (pairs === undefined) throw ConfigError.make("data-blend", blend, "is not pairs of a positive weight and a token file", 'write --data-blend "0.3 a.bin 0.7 b.bin"')
  return Blend.make(
    pairs.names.map((file) => inspected("data-blend", file, c)),
    pairs.weights,
  )
}

/** A token file checked against the model, its problems named after `field`; throws a ConfigError. */
const inspected = (field: "data" | "data-blend" | "eval-data", path: string, c: RunConfig.RunConfig): TokenFile.TokenFile => {
  const range = field === "data-blend" ? undefined : DataRange.rangeOf(`${field}-range`, c[`${field}-range`])
  const file = TokenFile.inspect(path, c["data-dtype"], c.seq, c.vocab, field, range)
  if (ConfigError.isConfigError(file)) throw file
  return file
}

/** What --eval-data evaluates on (or undefined); throws a ConfigError for eval flags without it. */
const evaluationOf = (c: RunConfig.RunConfig, sources: RunConfig.Decoded["sources"]): HeldOut.EvaluationSetup | undefined => {
  if (c["eval-data"] === undefined) {
    if (c["eval-every"] !== undefined) throw ConfigError.make("eval-every", c["eval-every"], "has no held-out data to evaluate on", "add --eval-data FILE, or drop --eval-every")
    if (sources["eval-batches"]?._tag !== "default")
      throw ConfigError.make("eval-batches", c["eval-batches"], "has no held-out data to evaluate on", "add --eval-data FILE, or drop --eval-batches")
    return undefined
  }
  return { data: inspected("eval-data", c["eval-data"], c), batches: c["eval-batches"] }
}

/**
 * The router and MoE-layer settings of the configuration (checked with the model). --sinkhorn
 * and --quantile-balancing take no aux loss: pleat's default one is dropped with them, one given
 * is refused (MoeSettings).
 */
const moeSettings = (c: RunConfig.RunConfig, sources: RunConfig.Decoded["sources"]): MoeSettings.MoeSettings => ({
  scoreFunction: c["score-function"],
  preSoftmax: c["pre-softmax"],
  numGroups: c["num-groups"],
  groupTopk: c["group-topk"],
  scalingFactor: c["scaling-factor"],
  auxLosses: (c.sinkhorn || c["quantile-balancing"]) && sources["aux-loss"]?._tag === "default" ? [] : AuxLossSpec.parseAuxLoss(c["aux-loss"]),
  zLossCoeff: c["z-loss-coeff"],
  dispatcher: c.dispatcher,
  probsAt: c["probs-at"],
  capacityFactor: c["capacity-factor"],
  dropPolicy: c["drop-policy"],
  padToCapacity: c["pad-to-capacity"],
  expertBias: c["expert-bias"],
  biasUpdateRate: c["bias-update-rate"],
  // Set only when on: the settings of a run without the flag are today's, key for key.
  ...(c["force-load-balancing"] ? { forceLoadBalancing: true } : {}),
  ...(c.sinkhorn ? { sinkhorn: true } : {}),
  ...(c["input-jitter-eps"] === undefined ? {} : { inputJitterEps: c["input-jitter-eps"] }),
  ...(c["force-biased"] === undefined ? {} : { forceBiased: c["force-biased"] }),
  ...(c["quantile-balancing"] ? { quantileBalancing: true } : {}),
  ...(c["quantile-balancing-ema"] === undefined ? {} : { quantileBalancingEma: c["quantile-balancing-ema"] }),
  ...(c["hash-layers"] === undefined ? {} : { hashLayers: c["hash-layers"] }),
})

/** The router state a checkpoint keeps by layer: the flag that needs it, its field, the manifest key, its name. */
const resumedState = [
  ["expert-bias", "expertBias", "expertBias", "biases"],
  ["quantile-balancing", "quantileBalancing", "quantileBeta", "betas"],
] as const

/** The coefficient of the plain aux loss (the setup's, which the model's settings agree with). */
const plainAuxCoeff = (moe: MoeSettings.MoeSettings | undefined): number => moe?.auxLosses.find((t) => t.type === "aux")?.coeff ?? 0

/**
 * Parses the flags (and config file) into a checked job; throws a BadInput naming every
 * problem it can see at once (flags and settings), else the first cross-field problem.
 * @category constructors
 */
export const resolve = (argv: ReadonlyArray<string>): Resolved | "help" => {
  const { collected, how, notices } = MegatronArgs.collect(argv, flags)
  if (Flags.bool(collected.flags, "help")) return "help"
  const problems = [...collected.problems]
  const { config: file, help: _help, ...given } = collected.flags
  let layer: RunConfig.FileLayer | undefined
  if (typeof file === "string") {
    const read = readConfig(file)
    if (ConfigError.isConfigError(read)) problems.push(read)
    else layer = read
  }
  const decoded = RunConfig.decode(layer, given, how)
  if (Result.isFailure(decoded)) problems.push(...decoded.failure)
  BadInput.throwIfAny(problems)
  if (Result.isFailure(decoded)) throw new Error("unreachable: decode failed without problems")
  const d = decoded.success
  const c = d.config
  // A backend given by flag or config file wins; else the launch environment's, else the default.
  const backend = BackendChecks.chosenBackend(c.backend, d.sources.backend?._tag === "default")
  BadInput.throwIfAny(BackendChecks.problemsOf(d, backend))
  const layout = explained(d, () => layoutOf(c))
  const parallel = explained(d, () => {
    const validated = ParallelConfig.validate({
      ...{ world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, vpp: layout?.vpp ?? c.vpp, order: c.order },
      ...{ firstStageLayers: c["first-stage-layers"], lastStageLayers: c["last-stage-layers"], stageLayers: layout?.stageLayers },
    })
    if (Result.isFailure(validated)) throw validated.failure
    return validated.success
  })
  const model: ModelConfig.ModelConfig = {
    ...ModelConfig.small,
    layers: c.layers,
    hidden: c.hidden,
    heads: c.heads,
    kvHeads: LatentFlags.kvHeadsOf(c, d.sources),
    vocab: c.vocab,
    experts: c.experts,
    topk: c.topk,
    ffn: c.ffn,
    moeFfn: c["moe-ffn"],
    ...explained(d, () => LayerPattern.placementOf(c, d.sources)),
    seq: c.seq,
    ...(c["untie-embeddings"] ? { untieEmbeddings: true } : {}),
    sharedExpertFfn: c["shared-expert-ffn"],
    ...(c["moe-latent-size"] === undefined ? {} : { moeLatentSize: c["moe-latent-size"] }),
    ...(c["qkv-bias"] || c["add-bias-linear"] ? { qkvBias: true } : {}),
    ...(c["add-bias-linear"] ? { linearBias: true } : {}),
    ...(c["router-bias"] ? { routerBias: true } : {}),
    ...(c["head-dim"] === undefined ? {} : { headDim: c["head-dim"] }),
    ...(c["qk-norm"] ? { qkNorm: true } : {}),
    ...(c["qk-norm-over-heads"] ? { qkNormOverHeads: true } : {}),
    ...(c["apply-layernorm-1p"] ? { normOnePlus: true } : {}),
    ...(c["qk-l2-norm"] ? { qkL2Norm: true } : {}),
    ...explained(d, () => LatentFlags.attentionFieldsOf(c)),
    ...(c["mtp-num-layers"] === undefined ? {} : { mtpLayers: c["mtp-num-layers"] }),
    ...(c["mtp-loss-scaling-factor"] === undefined ? {} : { mtpLossScale: c["mtp-loss-scaling-factor"] }),
    ...(c["rope-theta"] === undefined ? {} : { ropeTheta: c["rope-theta"] }),
    ...(c["rotary-percent"] === undefined || c["rotary-percent"] === 1 ? {} : { rotaryPercent: c["rotary-percent"] }),
    ...(c["norm-eps"] === undefined ? {} : { normEps: c["norm-eps"] }),
    ...(c["shared-expert-gate"] ? { sharedExpertGate: true } : {}),
    ...explained(d, () => ActivationFlags.gluFieldOf(c)),
    moe: explained(d, () => moeSettings(c, d.sources)),
  }
  const batch = { microBatch: c["micro-batch"], globalBatch: c["global-batch"] }
  explained(d, () => ModelConfig.check(model, batch, parallel))
  const instances = DistributedOptimizer.instancesProblem({
    distributedOptimizer: c["distributed-optimizer"],
    distributedOptimizerInstances: c["distributed-optimizer-instances"],
    parallel,
  })
  if (instances !== undefined)
    explained(d, () => {
      throw instances
    })
  const data = explained(d, () => dataFile(c, d.sources))
  const evaluation = explained(d, () => evaluationOf(c, d.sources))
  const documents = explained(d, () => DocumentFlags.documentsOf(c))
  const routing = explained(d, () => RoutingFlags.routingOf(c))
  const blended = data !== undefined && Blend.isBlend(data) ? data.files.map((f) => ["--data-blend", f.path] as const) : []
  const inputs = [["--config", layer?.file], ["--data", c.data], ...blended, ["--eval-data", c["eval-data"]], ["--definition", c.definition?.split("#")[0]]] as const
  for (const problem of RunOutputs.problems(c.save, c.trace, inputs))
    explained(d, () => {
      throw problem
    })
  const definition = c.definition === undefined ? undefined : DefinitionFlag.parse(c.definition)
  if (ConfigError.isConfigError(definition))
    explained(d, () => {
      throw definition
    })
  const traceSteps = explained(d, () => Trace.stepWindowOf(c["trace-steps"], c.trace !== undefined))
  const recomputeModules = explained(d, () => RecomputeModules.fromSettings(c.recompute, c["recompute-modules"]))
  if (c["save-every"] !== undefined && c.save === undefined) {
    explained(d, () => {
      throw ConfigError.make("save-every", c["save-every"], "has no directory to write into", "add --save DIR, or drop --save-every")
    })
  }
  const runProblem = RunChecks.problemOf(c)
  if (runProblem !== undefined)
    explained(d, () => {
      throw runProblem
    })
  // A checkpoint to resume must be complete and of this run: find out before any work. Its rank
  // files' checksums are the ranks' to check together, before any step (Train, CheckpointCheck).
  const resumed = c.resume === undefined ? undefined : explained(d, () => Checkpoint.manifestFor(c.resume as string, { model, seed: c.seed, dtype: c.dtype }, false))
  // Router state the manifest keeps: a run that needs it cannot resume from a checkpoint without it.
  for (const [flag, field, key, what] of resumedState) {
    if (c[flag] && resumed !== undefined && resumed[key] === undefined) {
      explained(d, () => {
        throw ConfigError.make(
          field,
          true,
          `has no saved ${what} in ${c.resume} (saved without --${flag}, or by an older pleat): they would restart from 0`,
          `resume without --${flag}, or train from the start with it`,
        )
      })
    }
  }
  const first = resumed?.step ?? 0
  const optimizer = explained(d, () => Optimizer.configure(c.steps, c, model.hidden))
  explained(d, () => InitMethod.check(c["init-method-std"]))
  return {
    setup: {
      parallel,
      model,
      batch,
      seed: c.seed,
      ...(c["init-method-std"] === undefined ? {} : { initMethodStd: c["init-method-std"] }),
      dtype: c.dtype,
      optimizer,
      auxLossCoeff: plainAuxCoeff(model.moe),
      distributedOptimizer: c["distributed-optimizer"],
      ...(c["distributed-optimizer-instances"] === undefined ? {} : { distributedOptimizerInstances: c["distributed-optimizer-instances"] }),
      precision: c.precision,
      recompute: c.recompute,
      ...(recomputeModules === undefined ? {} : { recomputeModules }),
      ...(c.device === "cpu" ? {} : { device: c.device }),
      ...(data === undefined ? {} : { data }),
      ...(evaluation === undefined ? {} : { evaluation }),
      ...(documents === undefined ? {} : { documents }),
      ...(c["calculate-per-token-loss"] ? { perTokenLoss: true } : {}),
      ...(routing === undefined ? {} : { routing }),
      ...(definition === undefined || ConfigError.isConfigError(definition) ? {} : { definition }),
    },
    steps: c.steps,
    backend,
    workers: c.workers,
    log: c.log,
    logLevel: c["log-level"],
    save: c.save,
    saveEvery: c["save-every"],
    keep: c.keep,
    resume: c.resume,
    trace: c.trace,
    traceSteps,
    definitionText: c.definition,
    first,
    evalEvery: c["eval-every"],
    notices,
    explain: (error: ConfigError.ConfigError) => RunConfig.explain(error, d),
  }
}
