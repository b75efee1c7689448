/**
 * TrainCommand: `pleat train`, a supervised training job with progress, a summary, JSON logs,
 * checkpoints and a trace.
 *
 * Output: a progress bar (stderr, on a terminal) with loss and tokens/s; at the end a summary
 * on stdout: final loss, tokens/s, model FLOPs per step and achieved FLOP/s, load imbalance per
 * MoE layer. With `--log json`, one pino JSON line per step on stdout with at least
 * {"step","loss","lr","tokensPerSec"} instead.
 */
import * as Effect from "effect/Effect"
import { pino } from "pino"
import * as Folding from "../mapping/Folding.js"
import * as Trace from "../runtime/Trace.js"
import * as Train from "../train/Train.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"
import * as Progress from "./Progress.js"
import * as TrainOptions from "./TrainOptions.js"

/**
 * The usage text of `pleat train`.
 * @category configuration
 */
export const usage = `usage: pleat train [flags]

Trains a small Mixtral-like MoE model on local ranks with MoE Parallel Folding. Without flags:
4 layers, 8 experts (top-2), 8 ranks as attention tp 2 x cp 2 x pp 2 and MoE ep 2 x edp 2.

${Flags.usage(TrainOptions.flags)}
`

const format = (x: number, digits = 3) => (Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : x.toFixed(digits))

/**
 * Runs `pleat train`; resolves to the exit status.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number | Promise<number> => {
  const resolved = TrainOptions.resolve(argv)
  if (resolved === "help") {
    io.stdout(usage)
    return ExitCode.ok
  }
  const { setup, steps } = resolved
  const tokensPerStep = setup.batch.globalBatch * setup.model.seq
  const flops = TrainOptions.flopsPerStep(setup.model, setup.batch.globalBatch)
  const json = resolved.log === "json" ? pino({ base: null }, { write: (line: string) => io.stdout(line) }) : undefined
  const progress = resolved.log === "pretty" ? Progress.make(steps) : undefined
  const tracer = resolved.trace === undefined ? undefined : new Trace.Tracer()
  const s = setup.parallel.sizes
  if (json === undefined) {
    io.stdout(`pleat train: ${setup.model.layers} layers, ${setup.model.experts} experts top-${setup.model.topk}, ${setup.parallel.world} ranks: attention tp ${s.tp} x cp ${s.cp} x dp ${s.dp} x pp ${s.pp}${setup.parallel.vpp === undefined ? "" : ` (vpp ${setup.parallel.vpp})`}, moe etp ${s.etp} x ep ${s.ep} x edp ${s.edp}; ${setup.dtype}\n`)
  }
  const started = performance.now()
  const common = {
    steps,
    ...(resolved.save === undefined ? {} : { save: resolved.save }),
    ...(resolved.resume === undefined ? {} : { resume: resolved.resume }),
    onStep: (summary: Train.StepSummary) => {
      const tokensPerSec = summary.tokens / summary.seconds
      json?.info({ step: summary.step + 1, loss: summary.loss, lr: summary.lr, tokensPerSec, gradNorm: summary.gradNorm }, "step")
      progress?.update(summary.step + 1, `loss ${format(summary.loss)} | ${format(tokensPerSec, 0)} tokens/s`)
    },
  }
  const job = resolved.backend === "threads" ? Train.runThreads(setup, common) : Train.run(setup, { ...common, ...(tracer === undefined ? {} : { tracer }) })
  return Effect.runPromise(job).then((summaries) => {
    progress?.finish()
    if (tracer !== undefined && resolved.trace !== undefined) {
      const fold = Folding.make(setup.parallel)
      const label = (rank: number) => {
        const p = Folding.place(fold, rank)
        return `rank ${rank} (tp ${p.tp} cp ${p.cp} dp ${p.dp} pp ${p.pp} | ep ${p.ep} etp ${p.etp})`
      }
      io.writeFile(resolved.trace, JSON.stringify(tracer.toChrome(label)))
    }
    if (json !== undefined) return ExitCode.ok
    const seconds = (performance.now() - started) / 1000
    const last = summaries[summaries.length - 1]
    const first = summaries[0]
    const ran = summaries.length
    const lines = [
      `final loss ${last === undefined ? "-" : format(last.loss, 4)}${first === undefined ? "" : ` (step 1: ${format(first.loss, 4)})`}`,
      `${format((ran * tokensPerStep) / seconds, 0)} tokens/s over ${ran} steps in ${seconds.toFixed(1)} s`,
      `model FLOPs per step ${format(flops)}; achieved ${format((ran * flops) / seconds)} FLOP/s`,
      `load imbalance (max/mean tokens per expert) by MoE layer: ${(last?.imbalance ?? []).map((i) => `layer ${i.layer}: ${i.value.toFixed(2)}`).join(", ") || "-"}`,
    ]
    if (resolved.save !== undefined) lines.push(`checkpoint: ${resolved.save}`)
    if (resolved.trace !== undefined) lines.push(`trace: ${resolved.trace} (open in https://ui.perfetto.dev or chrome://tracing)`)
    io.stdout(lines.join("\n") + "\n")
    return ExitCode.ok
  })
}
