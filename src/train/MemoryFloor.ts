/**
 * MemoryFloor: what a training job cannot do without, checked before any rank starts: each
 * rank's parameter shards and their gradient accumulators (the setup's dtype; exactly what
 * RankParams.make allocates: the model's parameter list, the layers the rank's stages hold,
 * each parameter's slice under the mapping) and, without the distributed optimizer, AdamW's two
 * float32 moments of each. Activations, workspaces and the runtime come on top, so this is a
 * floor: a job over it cannot run, one under it may still not fit.
 *
 * Two refusals (ConfigError, before any work, instead of a rank dying at step 1 with Node's
 * "The value of "size" is out of range"):
 * - a single shard larger than one buffer holds (buffer.constants.MAX_LENGTH, 4 GiB in Node 20),
 *   named with the degree that splits it (ep for experts, tp for the rest; replicated ones by
 *   the model's width);
 * - a micro-batch's logits larger than one buffer holds: each rank's [micro-batch x seq / cp,
 *   vocab / tp] block is one tensor (and its gradient another), so a long sequence with a large
 *   vocabulary failed at step 1 with Node's "The value of "size" is out of range" (exit 1); on a
 *   GPU (`--device cuda`) the logits are device memory, out of this limit's reach (blocks only
 *   a rank can size, its routed rows times the expert width, are refused by the allocator at the
 *   step that makes them: StorageRecycler, a ConfigError, exit 2);
 * - the ranks this process hosts (every rank on the local and threads backends; one under MPI or
 *   NCCL) needing more than the machine's memory (its total, or a container's limit or
 *   PLEAT_MEMORY_LIMIT when lower: MemoryHeadroom.limitBytes, which also checks activations as
 *   they are made).
 * A model of one's own (`definition`) declares its own parameters: only the built-in model is
 * counted.
 */
import { constants } from "node:buffer"
import * as ConfigError from "../errors/ConfigError.js"
import * as Folding from "../mapping/Folding.js"
import * as Partition from "../pipeline/Partition.js"
import * as DType from "../tensor/DType.js"
import * as MemoryHeadroom from "../tensor/MemoryHeadroom.js"
import * as Params from "./Params.js"
import type * as TrainSetup from "./TrainSetup.js"

/**
 * A rank's floor: its bytes, and its largest shard.
 * @category models
 */
export interface RankFloor {
  readonly bytes: number
  readonly largest: { readonly spec: Params.ParamSpec; readonly elements: number } | undefined
}

/**
 * Every rank's floor under the setup's mapping (the built-in model's parameters).
 * @category mapping
 */
export const perRank = (setup: Pick<TrainSetup.TrainSetup, "parallel" | "model" | "dtype" | "distributedOptimizer">): Array<RankFloor> => {
  const { parallel, model } = setup
  const s = parallel.sizes
  const fold = Folding.make(parallel)
  const part = Partition.make(Partition.inputOf(model.layers, parallel))
  const specs = Params.specs(model)
  const perElement = 2 * DType.bytesPer(setup.dtype) + (setup.distributedOptimizer === true ? 0 : 8)
  const floors: Array<RankFloor> = []
  for (let rank = 0; rank < parallel.world; rank++) {
    const place = Folding.place(fold, rank)
    const chunks = Array.from({ length: parallel.vpp ?? 1 }, (_, v) => Partition.layersOf(part, place.pp, v))
    const stages = { first: place.pp === 0, last: place.pp === s.pp - 1, chunks }
    let elements = 0
    let largest: RankFloor["largest"]
    for (const spec of specs) {
      if (!Params.isHeld(spec, model.layers, stages)) continue
      const size = Params.sliceOf(spec, place, s).reduce((a, [from, to]) => a * (to - from), 1)
      elements += size
      if (largest === undefined || size > largest.elements) largest = { spec, elements: size }
    }
    floors.push({ bytes: elements * perElement, largest })
  }
  return floors
}

/**
 * The logits one rank holds for a micro-batch (the output layer's block, before the
 * vocabulary-parallel cross-entropy): its tokens (micro-batch x seq / cp, the sequence-parallel
 * rows gathered back over tp) by its share of the vocabulary.
 * @category mapping
 */
export const logitsBlock = (setup: Pick<TrainSetup.TrainSetup, "parallel" | "model" | "batch">): { readonly rows: number; readonly cols: number } => ({
  rows: (setup.batch.microBatch * setup.model.seq) / setup.parallel.sizes.cp,
  cols: Math.ceil(setup.model.vocab / setup.parallel.sizes.tp),
})

const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(1)} GiB`

/**
 * Why the setup cannot run on `backend` here, if it cannot: a shard or a micro-batch's logits
 * over one buffer, or more than the machine's memory (or PLEAT_MEMORY_LIMIT) in this process. `memoryBytes` and
 * `bufferBytes` default to this machine's and Node's.
 * @category guards
 */
export const problem = (
  setup: Pick<TrainSetup.TrainSetup, "parallel" | "model" | "batch" | "dtype" | "distributedOptimizer" | "definition" | "device">,
  backend: string,
  memoryBytes: number = MemoryHeadroom.limitBytes(),
  bufferBytes: number = constants.MAX_LENGTH,
): ConfigError.ConfigError | undefined => {
  if (setup.definition !== undefined) return undefined
  const floors = perRank(setup)
  const s = setup.parallel.sizes
  const bytesPer = DType.bytesPer(setup.dtype)
  const worst = floors.reduce<RankFloor["largest"]>((a, f) => (f.largest !== undefined && (a === undefined || f.largest.elements > a.elements) ? f.largest : a), undefined)
  if (worst !== undefined && worst.elements * bytesPer > bufferBytes) {
    const expert = Params.isExpert(worst.spec)
    const sharded = worst.spec.sharding !== "replicated"
    const field = expert ? "ep" : sharded ? "tp" : "hidden"
    const value = expert ? s.ep : sharded ? s.tp : setup.model.hidden
    return ConfigError.make(
      field,
      value,
      `leaves a parameter shard of ${gib(worst.elements * bytesPer)} (${worst.spec.name}, [${worst.spec.shape.join(", ")}] in whole), more than one buffer holds (${gib(bufferBytes)})`,
      expert ? "a larger --ep (or --etp), or a smaller model" : sharded ? "a larger --tp, or a smaller model" : "a smaller model",
    )
  }
  // On a GPU the logits are device memory, which Node's limit does not reach.
  const logits = logitsBlock(setup)
  if (setup.device !== "cuda" && logits.rows * logits.cols * bytesPer > bufferBytes) {
    return ConfigError.make(
      "seq",
      setup.model.seq,
      `with --micro-batch ${setup.batch.microBatch}, --vocab ${setup.model.vocab}, --cp ${s.cp} and --tp ${s.tp} makes each rank's logits [${logits.rows}, ${logits.cols}] ${gib(logits.rows * logits.cols * bytesPer)}, more than one buffer holds (${gib(bufferBytes)})`,
      "a shorter --seq or a smaller --micro-batch, or a larger --cp (splits the sequence) or --tp (splits the vocabulary)",
    )
  }
  const inProcess = backend.startsWith("local") || backend.startsWith("threads")
  const here = inProcess ? floors.reduce((a, f) => a + f.bytes, 0) : Math.max(0, ...floors.map((f) => f.bytes))
  if (here <= memoryBytes) return undefined
  const what = setup.distributedOptimizer === true ? "parameters and gradients" : "parameters, gradients and optimizer state"
  return ConfigError.make(
    "backend",
    backend,
    inProcess
      ? `hosts all ${floors.length} ranks in this process: their ${what} alone need ${gib(here)}, more than this machine's ${gib(memoryBytes)}`
      : `runs a rank per process: the largest rank's ${what} alone need ${gib(here)}, more than this machine's ${gib(memoryBytes)}`,
    inProcess
      ? "a smaller model (--hidden, --layers, --experts, --moe-ffn, --vocab), or one process per rank on machines with the memory (pleat launch, or mpirun with --backend mpi)"
      : "a smaller model (--hidden, --layers, --experts, --moe-ffn, --vocab), or more ranks to share it (--tp, --pp, --ep)",
  )
}
