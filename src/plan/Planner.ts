/**
 * Planner: every valid mapping of a job (the checks of `pleat groups` and of training:
 * ParallelConfig.validate, ModelConfig.check), its memory and step time, the ones that fit
 * ranked by predicted MFU.
 *
 * The search: tp, cp, pp, ep and etp over the divisors the GPU count and the model allow; for
 * each, the orders tp-cp-ep-dp-pp (Megatron's default) and tp-cp-ep-pp-dp (where valid and
 * different), vpp 1 (no interleaving) or any divisor of the layers per stage with the
 * micro-batch count a multiple of pp (Megatron's interleaved schedule), and micro-batches up to
 * `maxMicroBatch`, and recomputation none, selective or full. A flag the user gave fixes its dimension. Each mapping (tp, cp, pp, ep, etp)
 * is listed once, with its best order, vpp, micro-batch and recomputation, so the top K are K different
 * mappings. Ties keep the smaller memory, then the smaller degrees. With the distributed optimizer's
 * instances (Job.optimizerInstances), only mappings whose dp x cp and edp they divide. `onProgress` hears of
 * each (tp, cp) pair as the search reaches it (large clusters take seconds).
 */
import * as Result from "effect/Result"
import * as Divisors from "../mapping/Divisors.js"
import * as InstanceSlices from "../mapping/InstanceSlices.js"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import type * as RankGrid from "../mapping/RankGrid.js"
import * as ModelConfig from "../train/ModelConfig.js"
import type { Job, Mapping, Memory, Prediction, Recompute } from "./Job.js"
import * as MemoryModel from "./MemoryModel.js"
import * as ModelFlops from "./ModelFlops.js"
import * as Placement from "./Placement.js"
import * as StageLayers from "./StageLayers.js"
import * as StepTime from "./StepTime.js"

/**
 * Dimensions the user fixed.
 * @category models
 */
export interface Fixed {
  readonly tp?: number | undefined
  readonly cp?: number | undefined
  readonly pp?: number | undefined
  readonly vpp?: number | undefined
  readonly ep?: number | undefined
  readonly etp?: number | undefined
  readonly microBatch?: number | undefined
  readonly recompute?: Recompute | undefined
  /**
   * Also weigh pipeline degrees that do not divide the layers, the first and last stage holding
   * the rest (StageLayers.unevenEnds; vpp 1). A fixed pp that does not divide them is weighed so
   * whatever this says.
   */
  readonly unevenStages?: boolean | undefined
}

/**
 * The outcome: the ranked predictions that fit, how many valid mappings were weighed, and the
 * one that missed the memory by the least (when none fits).
 * @category models
 */
export interface Outcome {
  readonly candidates: ReadonlyArray<Prediction>
  readonly weighed: number
  readonly closest: { readonly mapping: Mapping; readonly bytes: number } | undefined
}

/**
 * The largest micro-batch the search tries (larger ones rarely fit and never shorten the bubble).
 * @category configuration
 */
export const maxMicroBatch = 8

const orders = ["tp-cp-ep-dp-pp", "tp-cp-ep-pp-dp"] as const

/** Recomputation in the order of preference on equal MFU (less recomputation first). */
const recomputes: ReadonlyArray<Recompute> = ["none", "selective", "full"]

const choices = (n: number, fixed: number | undefined): ReadonlyArray<number> => (fixed === undefined ? Divisors.of(n) : n % fixed === 0 ? [fixed] : [])

const spreadsOf = (dense: RankGrid.RankGrid, expert: RankGrid.RankGrid, gpusPerNode: number, memo: Placement.Memo, instances: number): StepTime.Spreads => ({
  tp: Placement.spreadOf(memo, dense, ["tp"], gpusPerNode),
  cp: Placement.spreadOf(memo, dense, ["cp"], gpusPerNode),
  pp: Placement.spreadOf(memo, dense, ["pp"], gpusPerNode),
  ep: Placement.spreadOf(memo, expert, ["ep"], gpusPerNode),
  etp: Placement.spreadOf(memo, expert, ["etp"], gpusPerNode),
  dpCp: Placement.spreadOf(memo, dense, ["dp", "cp"], gpusPerNode),
  edp: Placement.spreadOf(memo, expert, ["edp"], gpusPerNode),
  instances:
    instances === 1
      ? undefined
      : { dpCp: Placement.slicedOf(memo, dense, ["dp", "cp"], gpusPerNode, instances), edp: Placement.slicedOf(memo, expert, ["edp"], gpusPerNode, instances) },
})

/** Whether the model and batch fit the mapping (ModelConfig's rule, the one training applies). */
const fits = (job: Job, config: ParallelConfig.ParallelConfig, microBatch: number): boolean =>
  ModelConfig.problemOf({ ...job.model, seq: job.seq }, { microBatch, globalBatch: job.globalBatch }, config) === undefined

/** Predicts one mapping whose placement and memory are known. */
const predictWith = (job: Job, mapping: Mapping, memory: Memory, spreads: StepTime.Spreads): Prediction => {
  const breakdown = StepTime.ofMapping(job, mapping, spreads)
  const stepSeconds = StepTime.seconds(breakdown)
  const mfu = ModelFlops.perStep(job.model, job.seq, job.globalBatch) / (stepSeconds * job.gpus * job.cluster.peakTflops * 1e12)
  return { mapping, memory, stepSeconds, mfu, breakdown }
}

const better = (a: Prediction, b: Prediction): number =>
  b.mfu - a.mfu ||
  a.memory.total - b.memory.total ||
  a.mapping.tp - b.mapping.tp ||
  a.mapping.cp - b.mapping.cp ||
  a.mapping.pp - b.mapping.pp ||
  a.mapping.ep - b.mapping.ep ||
  a.mapping.etp - b.mapping.etp

/**
 * Weighs every valid mapping of `job` within `fixed`.
 * @category constructors
 */
export const plan = (job: Job, fixed: Fixed, onProgress?: (done: number, total: number) => void): Outcome => {
  const capacity = job.cluster.memoryGB * 1e9
  const best = new Map<string, Prediction>()
  let weighed = 0
  const memo: Placement.Memo = new Map()
  let closest: Outcome["closest"]
  const g = job.gpus
  const instances = job.optimizerInstances ?? 1
  // The (tp, cp) pairs: the unit of progress.
  const pairs = choices(g, fixed.tp).flatMap((tp) => choices(g / tp, fixed.cp).map((cp) => [tp, cp] as const))
  for (const [done, [tp, cp]] of pairs.entries()) {
    onProgress?.(done, pairs.length)
    for (const pp of choices(g / (tp * cp), fixed.pp)) {
      const even = job.model.layers % pp === 0
      const ends = even || (fixed.unevenStages !== true && fixed.pp !== pp) ? undefined : StageLayers.unevenEnds(job.model.layers, pp)
      if (!even && ends === undefined) continue
      for (const ep of choices(g / pp, fixed.ep))
        for (const etp of choices(g / (pp * ep), fixed.etp)) {
          const layouts = new Set<string>()
          for (const order of orders) {
            const validated = ParallelConfig.validate({ world: g, tp, cp, pp, ep, etp, order, ...ends })
            if (Result.isFailure(validated)) continue
            const config = validated.success
            // The distributed optimizer's instances must divide both gradient groups (training's rule).
            if (!InstanceSlices.divide(config.sizes, instances)) continue
            // Orders that lay the ranks out the same are one choice.
            const dense = ParallelConfig.denseGrid(config)
            const expert = ParallelConfig.expertGrid(config)
            const layout = `${dense.axes.map((a) => a.stride).join()}|${expert.axes.map((a) => a.stride).join()}`
            if (layouts.has(layout)) continue
            layouts.add(layout)
            const spreads = spreadsOf(dense, expert, job.cluster.gpusPerNode, memo, instances)
            const s = config.sizes
            const vpps = pp === 1 || ends !== undefined ? (fixed.vpp === undefined || fixed.vpp === 1 ? [1] : []) : choices(job.model.layers / pp, fixed.vpp)
            const microBatchCandidates = fixed.microBatch === undefined ? Divisors.of(job.globalBatch / s.dp).filter((m) => m <= maxMicroBatch) : [fixed.microBatch]
            for (const vpp of vpps)
              for (const microBatch of microBatchCandidates) {
                if (!fits(job, vpp > 1 ? { ...config, vpp } : config, microBatch)) continue
                if (vpp > 1 && (job.globalBatch / (microBatch * s.dp)) % pp !== 0) continue
                // Recomputation only adds time: the first level that fits is the best one.
                for (const recompute of fixed.recompute === undefined ? recomputes : [fixed.recompute]) {
                  const mapping: Mapping = { tp, cp, pp, vpp, ep, etp, dp: s.dp, edp: s.edp, order, microBatch, recompute, ...ends }
                  weighed++
                  const memory = MemoryModel.ofMapping(job, mapping)
                  if (memory.total > capacity) {
                    const over = memory.total - capacity
                    if (closest === undefined || over < closest.bytes) closest = { mapping, bytes: over }
                    continue
                  }
                  const prediction = predictWith(job, mapping, memory, spreads)
                  const key = `${tp},${cp},${pp},${ep},${etp}`
                  const held = best.get(key)
                  if (held === undefined || better(prediction, held) < 0) best.set(key, prediction)
                  break
                }
              }
          }
        }
    }
  }
  onProgress?.(pairs.length, pairs.length)
  return { candidates: [...best.values()].sort(better), weighed, closest }
}
