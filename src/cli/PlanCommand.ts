/**
 * PlanCommand: `pleat plan`, choose folded mappings for a model on a cluster and predict each
 * one's memory, step time and MFU (the planner: src/plan/).
 *
 * Any mapping flag given fixes its dimension; with all of them (and --micro-batch, --recompute)
 * the plan predicts one configuration. A model that fits no mapping exits 2 naming the mapping
 * that missed the memory by the least, and by how much.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import type { Job, Precision, Recompute } from "../plan/Job.js"
import * as ModelFlops from "../plan/ModelFlops.js"
import * as Planner from "../plan/Planner.js"
import * as ModelConfig from "../train/ModelConfig.js"
import * as ModelPresets from "../train/ModelPresets.js"
import * as FoldPicture from "../viz/FoldPicture.js"
import * as Cluster from "../plan/Cluster.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"
import * as OutputPath from "./OutputPath.js"
import * as PlanInputs from "./PlanInputs.js"
import * as PlanText from "./PlanText.js"
import * as Progress from "./Progress.js"

/**
 * The largest GPU count `pleat plan` weighs (the largest world pleat lays out).
 * @category configuration
 */
const maxGpus = 1 << 22

/**
 * The GPU count from which the search shows progress (16,384 GPUs take ~2 s here, 65,536 ~4 s).
 * @category configuration
 */
const progressFromGpus = 1 << 14

const precisions: ReadonlyArray<Precision> = ["bf16", "fp8"]
const recomputes: ReadonlyArray<Recompute> = ["none", "selective", "full"]

const flags: Readonly<Record<string, Flags.FlagSpec>> = {
  model: { kind: "string", placeholder: "M", help: `model preset (${ModelPresets.names.join(", ")}) or a model JSON file (required)` },
  gpus: { kind: "int", placeholder: "N", help: "number of GPUs (required)", max: maxGpus },
  cluster: { kind: "string", placeholder: "C", help: `cluster preset (${Cluster.names.join(", ")}) or a cluster JSON file (default dgx-h100)` },
  seq: { kind: "int", placeholder: "S", help: "sequence length (default: the model's, 4096 for the presets)" },
  "global-batch": { kind: "int", placeholder: "B", help: "sequences per step (required)" },
  "micro-batch": { kind: "int", placeholder: "M", help: `sequences per micro-batch (default: searched, 1 to ${Planner.maxMicroBatch})` },
  precision: { kind: "string", placeholder: "P", help: "bf16 (default) or fp8 GEMMs" },
  recompute: { kind: "string", placeholder: "R", help: "none, selective or full (default: searched, the least that fits)" },
  tp: { kind: "int", placeholder: "T", help: "fix the attention tensor-parallel size" },
  cp: { kind: "int", placeholder: "C", help: "fix the context-parallel size" },
  pp: { kind: "int", placeholder: "P", help: "fix the pipeline-parallel size" },
  vpp: { kind: "int", placeholder: "V", help: "fix the virtual stages per rank (1: no interleaving)" },
  ep: { kind: "int", placeholder: "E", help: "fix the expert-parallel size" },
  etp: { kind: "int", placeholder: "X", help: "fix the expert tensor-parallel size" },
  "uneven-stages": {
    kind: "boolean",
    help: "also weigh pipeline sizes that do not divide the layers: the middle ranks ceil(layers/pp) each, the first and last the rest (pleat train's --first-stage-layers / --last-stage-layers; a fixed --pp that does not divide them is weighed so anyway)",
  },
  routing: {
    kind: "string",
    placeholder: "DIR",
    help: "a recorded routing of the model's experts (pleat train --routing-record DIR): each EP size's busiest rank, as the recording loads it, sets the routed experts' time, traffic and memory (default: balanced)",
  },
  "distributed-optimizer-instances": {
    kind: "int",
    placeholder: "N",
    min: 1,
    help: "hybrid sharding (pleat train's flag): the optimizer state sharded within N slices of each gradient group and replicated across them, gradients all-reduced across; only mappings whose dp x cp and edp N divides (default 1)",
  },
  top: { kind: "int", placeholder: "K", help: "how many mappings to list (default 5)" },
  json: { kind: "boolean", help: "print the plan as JSON" },
  svg: { kind: "string", placeholder: "FILE", help: "draw the best mapping's folding into FILE" },
  help: { kind: "boolean", help: "show this help" },
}

const usage = `usage: pleat plan --model PRESET|FILE.json --gpus N [--cluster PRESET|FILE.json] [--seq S] --global-batch B [--micro-batch M]
                  [--precision bf16|fp8] [--recompute none|selective|full] [--tp T --cp C --pp P --vpp V --ep E --etp X]
                  [--uneven-stages] [--routing DIR] [--distributed-optimizer-instances N] [--top K] [--json] [--svg FILE]

Weighs every valid folded mapping of the model on the GPUs (the checks of pleat groups and of
training), predicts each one's memory per GPU, step time and MFU (Megatron's FLOPs formula over
the bf16 peak), drops those that do not fit, and lists the best K, each mapping once with its best
order, vpp, micro-batch and recomputation. A mapping flag fixes that dimension. Cost model and
calibration: README "Planning a run".

${Flags.usage(flags)}
`

const choice = <T extends string>(field: string, value: string | undefined, options: ReadonlyArray<T>): T | undefined => {
  if (value === undefined) return undefined
  if ((options as ReadonlyArray<string>).includes(value)) return value as T
  throw ConfigError.make(field, value, "is not allowed", `use one of ${options.join(", ")}`)
}

const required = <T>(field: string, value: T | undefined, fix: string): T => {
  if (value === undefined) throw ConfigError.make(field, undefined, "is required", fix)
  return value
}

const gb = (bytes: number): string => `${(bytes / 1e9).toFixed(1)} GB`

/**
 * Runs `pleat plan` with its arguments (after the word `plan`); returns the exit status.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number => {
  const f = Flags.parse(argv, flags)
  if (Flags.bool(f, "help")) {
    io.stdout(usage)
    return ExitCode.ok
  }
  const svgFile = Flags.string(f, "svg")
  if (svgFile !== undefined) OutputPath.check("--svg", svgFile)
  const model = PlanInputs.model(required("--model", Flags.string(f, "model"), `pass --model with one of ${ModelPresets.names.join(", ")}, or a model JSON file`))
  const cluster = PlanInputs.cluster(Flags.string(f, "cluster") ?? "dgx-h100")
  const overwrites =
    svgFile === undefined
      ? undefined
      : OutputPath.inputProblem("--svg", svgFile, [
          ["--model", PlanInputs.fileOf(Flags.string(f, "model"))],
          ["--cluster", PlanInputs.fileOf(Flags.string(f, "cluster"))],
        ])
  if (overwrites !== undefined) throw overwrites
  const gpus = required("--gpus", Flags.int(f, "gpus"), "pass --gpus N, the number of GPUs")
  const seq = Flags.int(f, "seq") ?? (model.model.seq > 0 ? model.model.seq : undefined)
  const routing = Flags.string(f, "routing")
  const instances = Flags.int(f, "distributed-optimizer-instances")
  const job: Job = {
    modelName: model.name,
    model: model.model,
    cluster,
    gpus,
    seq: required("--seq", seq, "pass --seq S (the model file gives no seq)"),
    globalBatch: required("--global-batch", Flags.int(f, "global-batch"), "pass --global-batch B, the sequences per step"),
    precision: choice("--precision", Flags.string(f, "precision"), precisions) ?? "bf16",
    ...(routing === undefined ? {} : { expertLoad: PlanInputs.expertLoad(routing, model.model) }),
    ...(instances === undefined ? {} : { optimizerInstances: instances }),
  }
  const fixed: Planner.Fixed = {
    tp: Flags.int(f, "tp"),
    cp: Flags.int(f, "cp"),
    pp: Flags.int(f, "pp"),
    vpp: Flags.int(f, "vpp"),
    ep: Flags.int(f, "ep"),
    etp: Flags.int(f, "etp"),
    microBatch: Flags.int(f, "micro-batch"),
    recompute: choice("--recompute", Flags.string(f, "recompute"), recomputes),
    ...(Flags.bool(f, "uneven-stages") ? { unevenStages: true } : {}),
  }
  const top = Flags.int(f, "top") ?? 5
  // What is wrong with the model or batch whatever the mapping (heads that do not divide hidden,
  // top-k above the experts, ...) is said as such, before any search.
  const alone = ModelConfig.problemOf({ ...job.model, seq: job.seq }, { microBatch: fixed.microBatch ?? 1, globalBatch: job.globalBatch }, ParallelConfig.make({ world: 1 }))
  if (alone !== undefined)
    throw ConfigError.make(
      alone.field === "global-batch" || alone.field === "micro-batch" || alone.field === "seq" ? `--${alone.field}` : `--model ${job.modelName}: ${alone.field}`,
      alone.value,
      alone.reason,
      alone.fix,
    )
  // From this many GPUs the search takes a second or more here: show its progress on stderr.
  const showProgress = gpus >= progressFromGpus
  let bar: Progress.Progress | undefined
  const outcome = Planner.plan(job, fixed, (done, total) => {
    if (!showProgress) return
    bar ??= Progress.make(total, 0, Progress.toStderr(io), Math.max(1, Math.ceil(total / 10)), "tp-cp pair")
    bar.update(done, `weighing the mappings of ${gpus} GPUs`)
  })
  bar?.clear()
  const best = outcome.candidates[0]
  if (best === undefined) {
    const what = `${job.modelName} (seq ${job.seq}, global batch ${job.globalBatch})`
    if (outcome.closest === undefined)
      throw ConfigError.make(
        "--gpus",
        gpus,
        `allows no valid mapping of ${what}${Object.values(fixed).some((v) => v !== undefined) ? " with the fixed flags" : ""}${instances === undefined ? "" : ` and ${instances} distributed optimizer instances`}: every split breaks a divisibility rule (heads, layers, experts, batch${instances === undefined ? "" : ", instances dividing dp x cp and edp"})`,
        `choose a GPU count whose divisors fit the model (a power of two for the presets), a global batch divisible by the data-parallel sizes${instances === undefined ? "" : ", fewer --distributed-optimizer-instances"}, or fewer fixed flags`,
      )
    const m = outcome.closest.mapping
    throw ConfigError.make(
      "--gpus",
      gpus,
      `fits no mapping of ${what} in ${cluster.memoryGB} GB per GPU: the closest (tp ${m.tp} cp ${m.cp} pp ${m.pp}${m.firstStageLayers === undefined ? "" : ` (first ${m.firstStageLayers}, last ${m.lastStageLayers} layers)`} vpp ${m.vpp} ep ${m.ep} etp ${m.etp}, micro-batch ${m.microBatch}, recompute ${m.recompute}) needs ${gb(outcome.closest.bytes)} more`,
      `use more GPUs, a cluster with more memory per GPU (e.g. --cluster dgx-h200)${m.recompute === "full" ? "" : ", full recomputation"}${instances === undefined || instances === 1 ? "" : ", fewer --distributed-optimizer-instances"}${Object.values(fixed).some((v) => v !== undefined) ? ", or fewer fixed flags" : ""}`,
    )
  }
  const modelFlops = ModelFlops.perStep(job.model, job.seq, job.globalBatch)
  if (svgFile !== undefined) {
    const b = best.mapping
    const config = ParallelConfig.make({
      ...{ world: gpus, tp: b.tp, cp: b.cp, pp: b.pp, ep: b.ep, etp: b.etp, vpp: b.vpp > 1 ? b.vpp : undefined, order: b.order },
      ...{ firstStageLayers: b.firstStageLayers, lastStageLayers: b.lastStageLayers },
    })
    OutputPath.write(io, "--svg", svgFile, FoldPicture.render(config))
  }
  const json = Flags.bool(f, "json")
  io.stdout(json ? `${JSON.stringify(PlanText.json(job, outcome, top, modelFlops))}\n` : PlanText.table(job, outcome, top, modelFlops))
  if (svgFile !== undefined) (json ? io.stderr : io.stdout)(`picture: ${svgFile}\n`)
  return ExitCode.ok
}
