/**
 * PlanText: what `pleat plan` prints: the JSON document (`--json`) and the table with the
 * reason the top choice wins (its largest terms, and where it gains on the runner-up).
 */
import type { Breakdown, Job, Prediction } from "../plan/Job.js"
import type * as Planner from "../plan/Planner.js"

const GiB = 2 ** 30

/** Rounds to `digits` significant digits (JSON stays readable; nothing the planner knows is finer). */
const round = (x: number, digits = 6): number => (x === 0 ? 0 : Number(x.toPrecision(digits)))

const roundAll = <T extends object>(o: T, scale = 1): Record<keyof T, number> =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round((v as number) / scale)])) as Record<keyof T, number>

/**
 * One candidate as JSON: the mapping, memory in GiB, the step in seconds, MFU as a fraction, the
 * step's terms in seconds (they add up to stepSeconds) and the memory's parts in GiB.
 * @category formatting
 */
const candidateJson = (job: Job, p: Prediction) => ({
  tp: p.mapping.tp,
  cp: p.mapping.cp,
  pp: p.mapping.pp,
  vpp: p.mapping.vpp,
  ep: p.mapping.ep,
  etp: p.mapping.etp,
  dp: p.mapping.dp,
  edp: p.mapping.edp,
  order: p.mapping.order,
  microBatch: p.mapping.microBatch,
  recompute: p.mapping.recompute,
  // Only where the pipeline's stages are uneven (--uneven-stages, or a --pp that does not divide the layers).
  ...(p.mapping.firstStageLayers === undefined ? {} : { firstStageLayers: p.mapping.firstStageLayers, lastStageLayers: p.mapping.lastStageLayers }),
  memoryGiB: round(p.memory.total / GiB),
  stepSeconds: round(p.stepSeconds),
  mfu: round(p.mfu),
  breakdown: roundAll(p.breakdown),
  memory: roundAll(p.memory, GiB),
  // Only with --routing: the busiest EP rank's routed tokens over the mean's at this ep (ExpertLoad).
  ...(job.expertLoad === undefined ? {} : { expertLoad: round(job.expertLoad(p.mapping.ep)) }),
})

/**
 * The JSON document of a plan.
 * @category formatting
 */
export const json = (job: Job, outcome: Planner.Outcome, top: number, modelFlops: number) => ({
  model: job.modelName,
  gpus: job.gpus,
  cluster: job.cluster.name,
  seq: job.seq,
  globalBatch: job.globalBatch,
  precision: job.precision,
  // Only with --distributed-optimizer-instances.
  ...(job.optimizerInstances === undefined ? {} : { distributedOptimizerInstances: job.optimizerInstances }),
  modelFlopsPerStep: round(modelFlops),
  mappingsWeighed: outcome.weighed,
  mappingsThatFit: outcome.candidates.length,
  candidates: outcome.candidates.slice(0, top).map((p) => candidateJson(job, p)),
})

const termNames: Record<keyof Breakdown, string> = {
  gemm: "GEMMs",
  attention: "attention",
  elementwise: "elementwise kernels",
  fixed: "per-layer fixed costs",
  recompute: "recomputation",
  tp: "TP/SP collectives",
  cp: "CP ring",
  ep: "EP all-to-all",
  etp: "ETP all-gather/reduce-scatter",
  pp: "pipeline send/receive",
  bubble: "pipeline bubble",
  dp: "DP gradient/parameter traffic",
  optimizer: "optimizer step",
}

const terms = (b: Breakdown): Array<[keyof Breakdown, number]> => (Object.entries(b) as Array<[keyof Breakdown, number]>).sort((x, y) => y[1] - x[1])

const mappingText = (p: Prediction): string => {
  const m = p.mapping
  return `tp ${m.tp} cp ${m.cp} pp ${ppCell(m)}${m.vpp > 1 ? ` vpp ${m.vpp}` : ""} ep ${m.ep} etp ${m.etp}`
}

/** pp, with the first and last stage's layers where the split is uneven: "16 (1|4)". */
const ppCell = (m: Prediction["mapping"]): string => (m.firstStageLayers === undefined ? `${m.pp}` : `${m.pp} (${m.firstStageLayers}|${m.lastStageLayers})`)

/**
 * Why the top candidate wins: its largest terms, and the terms where it gains most on the next.
 * @category formatting
 */
const why = (ranked: ReadonlyArray<Prediction>): Array<string> => {
  const [first, second] = ranked
  if (first === undefined) return []
  const share = (s: number) => `${((100 * s) / first.stepSeconds).toFixed(0)}%`
  const lines = [
    `why #1 (${mappingText(first)}) wins: its step is ${terms(first.breakdown)
      .slice(0, 4)
      .map(([k, v]) => `${termNames[k]} ${share(v)}`)
      .join(
        ", ",
      )}; ${terms(first.breakdown)[0]?.[0] === "gemm" ? "compute dominates, so the mapping that keeps GEMMs large and communication inside NVLink wins" : "a communication or schedule term dominates: see the breakdown"}`,
  ]
  if (second !== undefined) {
    const gains = (Object.keys(first.breakdown) as Array<keyof Breakdown>)
      .map((k) => [k, second.breakdown[k] - first.breakdown[k]] as const)
      .filter(([, d]) => Math.abs(d) >= 0.005 * first.stepSeconds)
      .sort((x, y) => y[1] - x[1])
    const text = gains.map(([k, d]) => `${termNames[k]} ${d >= 0 ? "-" : "+"}${Math.abs(d).toFixed(2)} s`).join(", ")
    lines.push(`against #2 (${mappingText(second)}): ${text === "" ? "the terms are within 0.5% of the step" : text}`)
  }
  return lines
}

/**
 * The table of the top candidates, with a header naming the job.
 * @category formatting
 */
export const table = (job: Job, outcome: Planner.Outcome, top: number, modelFlops: number): string => {
  const c = job.cluster
  const header = [
    `pleat plan: ${job.modelName} on ${job.gpus} GPUs of ${c.name} (${c.gpusPerNode} per node, ${c.memoryGB} GB, ${c.peakTflops} TFLOP/s bf16), seq ${job.seq}, global batch ${job.globalBatch}, ${job.precision}${job.optimizerInstances === undefined ? "" : `, ${job.optimizerInstances} distributed optimizer instances`}`,
    `model FLOPs per step ${modelFlops.toExponential(3)} (Megatron's formula); ${outcome.weighed} mappings weighed, ${outcome.candidates.length} fit; MFU = model FLOP/s per GPU / ${c.peakTflops} TFLOP/s`,
    "",
  ]
  const columns = ["#", "tp", "cp", "pp", "vpp", "ep", "etp", "dp", "edp", "mb", "recompute", "memory GiB", "step s", "MFU %", "largest terms", "order"]
  const rows = outcome.candidates.slice(0, top).map((p, i) => {
    const m = p.mapping
    const largest = terms(p.breakdown)
      .slice(0, 3)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(", ")
    return [
      `${i + 1}`,
      m.tp,
      m.cp,
      ppCell(m),
      m.vpp,
      m.ep,
      m.etp,
      m.dp,
      m.edp,
      m.microBatch,
      m.recompute,
      (p.memory.total / GiB).toFixed(1),
      p.stepSeconds.toFixed(3),
      (100 * p.mfu).toFixed(1),
      largest,
      m.order,
    ].map(String)
  })
  const widths = columns.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)))
  const line = (r: ReadonlyArray<string>) =>
    r
      .map((cell, i) => (i >= 14 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)))
      .join("  ")
      .trimEnd()
  return `${[...header, line(columns), ...rows.map(line), "", ...loads(job, outcome.candidates.slice(0, top)), ...why(outcome.candidates)].join("\n")}\n`
}

/** With --routing, a line of the expert load the listed EP sizes were weighed at. */
const loads = (job: Job, listed: ReadonlyArray<Prediction>): Array<string> => {
  const load = job.expertLoad
  if (load === undefined) return []
  const eps = [...new Set(listed.map((p) => p.mapping.ep))].sort((a, b) => a - b)
  return [`expert load from the recorded routing (busiest EP rank's tokens / the mean's): ${eps.map((ep) => `ep ${ep} ${load(ep).toFixed(3)}`).join(", ")}`, ""]
}
