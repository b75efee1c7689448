/**
 * TrainCommand: `pleat train`, a supervised training job with progress, a summary, JSON logs,
 * checkpoints and a trace.
 *
 * Output: a progress bar (stderr, on a terminal) with loss and tokens/s; at the end a summary
 * on stdout: final loss, tokens/s, model FLOPs per step and achieved FLOP/s, load imbalance per
 * MoE layer. With `--log json`, pino JSON lines on stdout instead: one `start` record, one
 * record per step with at least {"step","loss","lr","tokensPerSec"}, and a last `summary`
 * record. The per-rank loggers write pino JSON to stderr at `--log-level` (default warn).
 * Every backend streams its steps as they complete, so the progress, the JSON lines and the
 * trace work the same on each.
 * The job is an Effect: a signal interrupts it (see RunMain), and Activity says which step
 * it had reached and which checkpoint was written last. A resume whose checkpoint is already
 * at --steps or past it says there is nothing to do and exits 0 without starting the job, or,
 * with --eval-data, evaluates the checkpoint as saved (no step trained). A
 * rank that fails (throws, reaches a non-finite loss or gradient, loses its worker) ends the
 * run with exit 1 and one line on stderr naming the rank, the step and the cause, and the last
 * checkpoint written. A checkpoint that cannot be saved into --save mid-run (a full disk, the
 * directory removed or made read-only) goes to a fallback directory, or is given up keeping the
 * last intact one (SaveFallback): the run trains on, one line on stderr says where the state
 * went, and the run exits 3 (ExitCode.saveFailed) after its usual summary.
 */
import * as PipelineText from "./PipelineText.js"
import * as Effect from "effect/Effect"
import { type Logger, pino } from "pino"
import * as Folding from "../mapping/Folding.js"
import * as MoeSettings from "../moe/MoeSettings.js"
import * as Log from "../runtime/Log.js"
import * as Trace from "../runtime/Trace.js"
import type * as HeldOut from "../train/HeldOut.js"
import type * as TrainSetup from "../train/TrainSetup.js"
import * as SaveFallback from "../train/SaveFallback.js"
import * as StepFlops from "../train/StepFlops.js"
import * as SteadyStep from "../train/SteadyStep.js"
import * as Train from "../train/Train.js"
import * as BadInput from "./BadInput.js"
import * as ConfigError from "../errors/ConfigError.js"
import { Activity } from "./Activity.js"
import * as DefinitionFlag from "./DefinitionFlag.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"
import * as MegatronNames from "./MegatronNames.js"
import * as MemoryTable from "./MemoryTable.js"
import * as OutputPath from "./OutputPath.js"
import * as Progress from "./Progress.js"
import * as RunConfig from "./RunConfig.js"
import * as TrainOptions from "./TrainOptions.js"

/**
 * The usage text of `pleat train`.
 * @category configuration
 */
const usage = ((d) => `usage: pleat train [flags]

Trains a small Mixtral-like MoE model on local ranks with MoE Parallel Folding. Without flags:
${d.layers} layers, ${d.experts} experts (top-${d.topk}), ${d.world} ranks as attention tp ${d.tp} x cp ${d.cp} x pp ${d.pp} and MoE etp ${d.etp} x ep ${d.ep}.
Settings come from the defaults below, then --config FILE.json, then the flags.
SIGINT or SIGTERM stops every rank and exits 130 or 143. --save DIR holds step-N/ checkpoint
directories and a pointer, latest; a save is crash-safe at every point (an interrupted one
leaves the previous checkpoint) and --resume DIR loads the latest complete one. A save that
fails mid-run goes to a fallback directory under the temporary directory, or keeps the previous
checkpoint; one line says where, and the run exits 3.

${Flags.usage(TrainOptions.flags)}

${MegatronNames.usage()}
`)(RunConfig.defaults)

const format = (x: number, digits = 3) => (Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : x.toFixed(digits))

/**
 * The MoE layers' metrics for the log: losses by layer, dropped pairs when dropping, and the
 * routing layers' EP overload factor (ExpertOverload: mean and max over EP groups and micro-batches).
 */
const moeMetrics = (summary: Pick<Train.StepSummary, "moe" | "overload"> | undefined, dropping: boolean) => {
  const overload = new Map((summary?.overload ?? []).map((o) => [o.layer, { mean: o.mean, max: o.max }]))
  return (summary?.moe ?? []).map((m) => {
    const o = overload.get(m.layer)
    return { layer: m.layer, losses: m.losses, ...(dropping ? { dropped: m.dropped } : {}), ...(o === undefined ? {} : { overload: o }) }
  })
}

/** The root of the per-rank loggers: pino JSON at `level`, on the command's stderr. */
const rankLogger = (level: string, io: Io): Logger =>
  // pino needs only `write` of its destination.
  Log.root({
    level,
    destination: {
      write: (line: string) => {
        io.stderr(line)
        return true
      },
    } as unknown as NodeJS.WritableStream,
  })

/** A resume already at --steps or past it: nothing to train, said plainly (exit 0). */
const nothingToDo = (resolved: TrainOptions.Resolved, io: Io): number => {
  if (resolved.resume === undefined) {
    if (resolved.log === "json") pino({ base: null }, { write: (line: string) => io.stdout(line) }).info({ first: 0, steps: 0, checkpoint: null }, "nothing to do")
    else io.stdout("pleat train: nothing to do: --steps 0 trains nothing; pass --steps N above 0 to train, or add --eval-data FILE to evaluate the initial model\n")
    return ExitCode.ok
  }
  const why = `the checkpoint in ${resolved.resume} is at step ${resolved.first} and --steps ${resolved.steps} counts all steps, resumed ones included`
  if (resolved.log === "json") {
    pino({ base: null }, { write: (line: string) => io.stdout(line) }).info({ first: resolved.first, steps: resolved.steps, checkpoint: resolved.resume ?? null }, "nothing to do")
  } else {
    io.stdout(`pleat train: nothing to do: ${why}; pass --steps above ${resolved.first} to train on\n`)
  }
  return ExitCode.ok
}

/**
 * Runs `pleat train`: the status, or the job as an Effect resolving to it.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number | Effect.Effect<number, unknown, Activity> => {
  const resolved = TrainOptions.resolve(argv)
  if (resolved === "help") {
    io.stdout(usage)
    return ExitCode.ok
  }
  return job(resolved, io)
}

const job = (resolved: TrainOptions.Resolved, io: Io): Effect.Effect<number, unknown, Activity> =>
  Effect.gen(function* () {
    const activity = yield* Activity
    const { setup, steps, first } = resolved
    for (const notice of resolved.notices) io.stderr(`pleat train: ${notice}\n`)
    yield* DefinitionFlag.check(setup.definition, resolved.definitionText)
    // At or past --steps, a resume trains nothing: it only evaluates the checkpoint, with --eval-data.
    const evaluateOnly = first >= steps
    if (evaluateOnly && setup.evaluation === undefined) return nothingToDo(resolved, io)
    const tokensPerStep = setup.batch.globalBatch * setup.model.seq
    const flops = StepFlops.perStep(setup.model, setup.batch.globalBatch)
    const dropping = setup.model.moe !== undefined && MoeSettings.drops(setup.model.moe)
    const json = resolved.log === "json" ? pino({ base: null }, { write: (line: string) => io.stdout(line) }) : undefined
    const progress = resolved.log === "pretty" && !evaluateOnly ? Progress.make(steps, first) : undefined
    const tracer = resolved.trace === undefined ? undefined : new Trace.Tracer(resolved.traceSteps)
    const s = setup.parallel.sizes
    const shape = `${setup.parallel.world} ranks: attention tp ${s.tp} x cp ${s.cp} x dp ${s.dp} x ${PipelineText.ppText(setup.parallel, setup.model.layers)}, moe etp ${s.etp} x ep ${s.ep} x edp ${s.edp}`
    // The run's header, once its checks passed (a damaged --resume found by the ranks' hashing
    // is refused with exit 2 and nothing on stdout, as every other input).
    const announce = () => {
      if (json === undefined) {
        const precision = setup.precision === "bf16" ? "bf16 (fp32 master weights)" : setup.dtype
        const mtp = setup.model.mtpLayers === undefined ? "" : ` (+${setup.model.mtpLayers} multi-token prediction)`
        io.stdout(
          `pleat train: ${setup.model.layers} layers${mtp}, ${setup.model.experts} experts top-${setup.model.topk}, ${shape}; ${precision}${documentsText(setup)}; ${resolved.backend} backend\n`,
        )
      } else {
        json.info({ world: setup.parallel.world, sizes: s, backend: resolved.backend, steps, first, dtype: setup.dtype, precision: setup.precision ?? "fp32" }, "start")
      }
    }
    let saved = resolved.save === undefined ? "no checkpoint written" : `no checkpoint written to ${resolved.save} (a previous one there is kept)`
    let done = first
    let finalSaved = false
    let lastSaved: string | undefined
    let saveFailed = false
    // The first and last steps' summaries and how many ran: all the summary needs, so the job
    // keeps no summary per step (memory stays flat over long runs).
    let firstSummary: Train.StepSummary | undefined
    let last: Train.StepSummary | undefined
    let ran = 0
    // The last evaluation on --eval-data, for the summary.
    let lastEval: HeldOut.EvalSummary | undefined
    // Every step's seconds, for the steady throughput (SteadyStep): one number a step.
    const stepSeconds: Array<number> = []
    // What an interruption would interrupt: the step reached and the last checkpoint written.
    const describe = () =>
      done < steps
        ? `after step ${done} of ${steps}; ${saved}`
        : `after the last step (${done} of ${steps})${
            resolved.save === undefined ? "" : finalSaved ? `; ${saved}` : `, while saving into ${resolved.save} (crash-safe: the new checkpoint or the previous one is kept)`
          }`
    activity.set(`before step ${first + 1} of ${steps} completed; ${saved}`)
    const started = performance.now()
    const common = {
      steps,
      onStart: announce,
      ...(resolved.save === undefined ? {} : { save: resolved.save, keep: resolved.keep }),
      ...(resolved.saveEvery === undefined ? {} : { saveEvery: resolved.saveEvery }),
      ...(resolved.resume === undefined ? {} : { resume: resolved.resume }),
      ...(resolved.evalEvery === undefined ? {} : { evalEvery: resolved.evalEvery }),
      onEval: (e: HeldOut.EvalSummary) => {
        lastEval = e
        const mtp = e.mtp.length === 0 ? {} : { evalMtpLoss: e.mtp }
        json?.info({ step: e.step, evalLoss: e.loss, evalPerplexity: Math.exp(e.loss), ...mtp }, "eval")
        const depths = e.mtp.length === 0 ? "" : `; multi-token prediction loss ${e.mtp.map((m) => format(m, 4)).join(", ")}`
        if (json === undefined) io.stdout(`eval after step ${e.step}: loss ${format(e.loss, 4)}, perplexity ${format(Math.exp(e.loss), 4)}${depths}\n`)
      },
      onSave: (step: number, stepDir: string) => {
        saved = `last checkpoint written: step ${step} in ${stepDir}`
        lastSaved = stepDir
        finalSaved = step === steps
        json?.info({ step, checkpoint: stepDir }, "checkpoint")
        activity.set(describe())
      },
      onSaveFailed: (failure: SaveFallback.SaveFailure) => {
        saveFailed = true
        progress?.finish()
        io.stderr(`pleat train: ${SaveFallback.explain(failure)}\n`)
      },
      retainSummaries: false,
      onStep: (summary: Train.StepSummary) => {
        firstSummary ??= summary
        last = summary
        ran++
        stepSeconds.push(summary.seconds)
        done = summary.step + 1
        const tokensPerSec = summary.tokens / summary.seconds
        const hostDeviceBytes = summary.ranks.flatMap((r) => (r.hostDeviceBytes === undefined ? [] : [r.hostDeviceBytes]))
        const hostWaits = summary.ranks.flatMap((r) => (r.hostWaits === undefined ? [] : [r.hostWaits]))
        const deviceMemory = summary.ranks.flatMap((r) => (r.deviceMemory === undefined ? [] : [r.deviceMemory]))
        json?.info(
          {
            step: done,
            loss: summary.loss,
            lr: summary.lr,
            tokensPerSec,
            gradNorm: summary.gradNorm,
            moe: moeMetrics(summary, dropping),
            ...(hostDeviceBytes.length === 0 ? {} : { hostDeviceBytes }),
            ...(hostWaits.length === 0 ? {} : { hostWaits }),
            ...(deviceMemory.length === 0 ? {} : { deviceMemory }),
          },
          "step",
        )
        progress?.update(done, `loss ${format(summary.loss)} | ${format(tokensPerSec, 0)} tok/s`)
        activity.set(describe())
      },
    }
    const run = Train.run(setup, {
      ...common,
      backend: resolved.backend,
      ...(resolved.workers === undefined ? {} : { workers: resolved.workers }),
      log: rankLogger(resolved.logLevel, io),
      ...(tracer === undefined ? {} : { tracer }),
    })
    // Ends the bar's line also when interrupted, so the interruption's line stands alone.
    const ended = yield* Effect.ensuring(
      Effect.mapError(run, (error) => (ConfigError.isConfigError(error) ? resolved.explain(error) : error)),
      Effect.sync(() => progress?.finish()),
    ).pipe(Effect.catchTag("RankFailed", (failed) => Effect.succeed(failed)))
    // A rank that failed (threw, diverged to a non-finite loss or gradient, lost its worker):
    // the run failed, not the input (every flag was valid, the data comes from the seed), so
    // exit 1 with one line naming rank, step and cause and where the last checkpoint is; but a
    // rank that met a configuration that cannot run (a ConfigError: a tensor over one buffer) is
    // the input's, exit 2 with the same line.
    if (!Array.isArray(ended)) {
      const input = BadInput.find(ended)
      io.stderr(`pleat train: ${ended.message.replace(/\s+/g, " ").trim()}; ${saved}\n`)
      return input === undefined ? ExitCode.failure : ExitCode.badInput
    }
    if (tracer !== undefined && resolved.trace !== undefined) {
      const fold = Folding.make(setup.parallel)
      const label = (rank: number) => {
        const p = Folding.place(fold, rank)
        return `rank ${rank} (tp ${p.tp} cp ${p.cp} dp ${p.dp} pp ${p.pp} | ep ${p.ep} etp ${p.etp})`
      }
      OutputPath.write(io, "--trace", resolved.trace, tracer.chromeJson(label))
    }
    const seconds = (performance.now() - started) / 1000
    const tokensPerSec = (ran * tokensPerStep) / seconds
    const steady = SteadyStep.steadySeconds(stepSeconds)
    const steadyTokensPerSec = steady === undefined || steady <= 0 ? null : tokensPerStep / steady
    const steadySteps = SteadyStep.steadyRange(ran, first + 1)
    const imbalance = last?.imbalance ?? []
    // Optimizer state (AdamW moments) each rank keeps; the distributed optimizer shards it.
    const optimizerState = last?.ranks.map((r) => r.optimizerStateBytes) ?? []
    const optimizerStateMax = Math.max(0, ...optimizerState)
    const moe = moeMetrics(last, dropping)
    if (json !== undefined) {
      json.info(
        {
          steps: ran,
          lastStep: first + ran,
          finalLoss: last?.loss ?? null,
          firstLoss: firstSummary?.loss ?? null,
          evalLoss: lastEval?.loss ?? null,
          tokensPerSec,
          steadyTokensPerSec,
          seconds,
          flopsPerStep: flops,
          flopsPerSec: (ran * flops) / seconds,
          optimizerStateBytes: optimizerStateMax,
          optimizerStateBytesPerRank: optimizerState,
          memory: last?.ranks.map((r) => r.memory) ?? [],
          distributedOptimizer: setup.distributedOptimizer === true,
          imbalance,
          moe,
          checkpoint: resolved.save ?? null,
          trace: resolved.trace ?? null,
        },
        "summary",
      )
      return saveFailed ? ExitCode.saveFailed : ExitCode.ok
    }
    if (evaluateOnly) {
      io.stdout(
        resolved.resume === undefined
          ? "no steps trained (--steps 0): the model was evaluated as initialized from --seed\n"
          : `no steps trained: the checkpoint in ${resolved.resume} is at step ${first} and --steps ${steps} counts all steps; it was evaluated as saved\n`,
      )
      return ExitCode.ok
    }
    const lines = [
      `final loss ${last === undefined ? "-" : format(last.loss, 4)}${firstSummary === undefined ? "" : ` (step ${firstSummary.step + 1}: ${format(firstSummary.loss, 4)})`}`,
      ...(lastEval === undefined
        ? []
        : [`eval loss ${format(lastEval.loss, 4)} after step ${lastEval.step} (${setup.evaluation?.batches} global batches of ${setup.evaluation?.data.path})`]),
      `${format(tokensPerSec, 0)} tokens/s over ${ran} steps in ${seconds.toFixed(1)} s${steadyTokensPerSec === null ? "" : `; steady ${format(steadyTokensPerSec, 0)} tokens/s (median step of ${steadySteps.from}-${steadySteps.to})`}`,
      `model FLOPs per step ${format(flops)}; achieved ${format((ran * flops) / seconds)} FLOP/s`,
      `load imbalance (max/mean tokens per expert) by MoE layer: ${imbalance.map((i) => `layer ${i.layer}: ${i.value.toFixed(2)}`).join(", ") || "-"}`,
      `optimizer state (AdamW moments) per rank: ${MemoryTable.formatBytes(optimizerStateMax)} max over ranks, ${MemoryTable.formatBytes(optimizerState.reduce((a, b) => a + b, 0))} in all (${setup.distributedOptimizer === true ? `distributed optimizer: sharded over the data-parallel ranks${(setup.distributedOptimizerInstances ?? 1) > 1 ? ` of each of ${setup.distributedOptimizerInstances} instances` : ""}` : "replicated; --distributed-optimizer shards it"})`,
    ]
    if (last !== undefined) lines.push(...MemoryTable.lines(last.ranks.map((r) => r.memory)))
    if (moe.some((m) => Object.keys(m.losses).length > 0))
      lines.push(
        `MoE losses (last step, without coefficients) by layer: ${moe
          .map(
            (m) =>
              `layer ${m.layer}: ${Object.entries(m.losses)
                .map(([name, v]) => `${name} ${format(v, 4)}`)
                .join(" ")}`,
          )
          .join(", ")}`,
      )
    // At ep 1 one rank holds every expert: the factor is 1 by definition, so the line is left out.
    if (setup.parallel.sizes.ep > 1 && (last?.overload.length ?? 0) > 0)
      lines.push(
        `EP overload (the busiest EP rank's routed rows / its group's mean; last step, mean and max over groups and micro-batches) by MoE layer: ${(last?.overload ?? [])
          .map((o) => `layer ${o.layer}: mean ${o.mean.toFixed(2)} max ${o.max.toFixed(2)}`)
          .join(", ")}`,
      )
    if (dropping) lines.push(`dropped (token, expert) pairs in the last step by layer: ${moe.map((m) => `layer ${m.layer}: ${m.dropped}`).join(", ") || "-"}`)
    if (resolved.save !== undefined) lines.push(`checkpoint: ${lastSaved ?? `${resolved.save} (none written)`}`)
    if (resolved.trace !== undefined) lines.push(`trace: ${resolved.trace} (open in https://ui.perfetto.dev or chrome://tracing)`)
    io.stdout(`${lines.join("\n")}\n`)
    return saveFailed ? ExitCode.saveFailed : ExitCode.ok
  })

/** What the run does with packed documents and how its loss averages, for the first line (empty by default). */
const documentsText = (setup: TrainSetup.TrainSetup): string => {
  const d = setup.documents
  const what =
    d === undefined
      ? []
      : [d.resetAttentionMask ? "attention within each" : "", d.resetPositionIds ? "positions restart" : "", d.eodMaskLoss ? "EOD inputs left out of the loss" : ""]
  const documents = d === undefined ? "" : `; documents ended by id ${d.eod} (${what.filter((w) => w !== "").join(", ")})`
  return documents + (setup.perTokenLoss === true ? "; per-token loss" : "")
}
