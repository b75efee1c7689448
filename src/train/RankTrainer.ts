/**
 * RankTrainer: one rank's training state (its parameter shards, optimizer moments) and one
 * training step: run the pipeline schedule's actions, synchronise gradients, clip, update.
 *
 * The step interprets the rank's action list (Interpreter.ts) over the typed links of
 * PipelineLinks.ts: activations and their gradients cross stages keyed by micro-batch, in the
 * model's hidden layout, so a message can never be taken for another one. Every forward of a
 * (micro-batch, chunk) records on its own tape (ChunkRun.ts), so an interleaved schedule can
 * keep several micro-batches in flight. Then gradients are synchronised and the optimizer steps
 * (all-reduced and updated on every replica; or, with the distributed optimizer, reduce-scattered,
 * each rank updating its part and all-gathering it: DistributedOptimizer.ts); a non-finite loss
 * share or gradient stops the rank first, naming it (NonFinite.ts).
 */
import * as Effect from "effect/Effect"
import * as Group from "../comm/Group.js"
import type * as Families from "../mapping/Families.js"
import * as Folding from "../mapping/Folding.js"
import * as LrSchedule from "./LrSchedule.js"
import * as MoeStats from "../model/MoeStats.js"
import * as MoeRunState from "../moe/MoeRunState.js"
import type { Action } from "../pipeline/Action.js"
import * as Partition from "../pipeline/Partition.js"
import * as Schedule from "../pipeline/Schedule.js"
import * as Device from "../tensor/Device.js"
import { runtimeOf } from "../tensor/device/Runtimes.js"
import * as GradAccumulator from "../tensor/GradAccumulator.js"
import { hostValues } from "../tensor/ops/Transfer.js"
import * as StableWeights from "../tensor/StableWeights.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as BuiltinModels from "./BuiltinModels.js"
import * as ChunkRun from "./ChunkRun.js"
import * as Data from "./Data.js"
import type * as Blend from "./Blend.js"
import * as DeviceDistributed from "./DeviceDistributed.js"
import * as DeviceGrads from "./DeviceGrads.js"
import * as DeviceOptimizer from "./DeviceOptimizer.js"
import * as DistributedOptimizer from "./DistributedOptimizer.js"
import * as Evaluation from "./Evaluation.js"
import * as InitMethod from "./InitMethod.js"
import * as Interpreter from "./Interpreter.js"
import * as Fault from "./Fault.js"
import * as ModelConfig from "./ModelConfig.js"
import type * as ModelDefinition from "./ModelDefinition.js"
import * as NonFinite from "./NonFinite.js"
import * as Optimizer from "./Optimizer.js"
import * as Params from "./Params.js"
import * as PipelineLinks from "./PipelineLinks.js"
import * as RankMemory from "./RankMemory.js"
import type * as ModelContext from "../model/ModelContext.js"
import * as RoutingSites from "./RoutingSites.js"
import * as StepReportModule from "./StepReport.js"
import type * as TrainSetupModule from "./TrainSetup.js"
import * as RankParams from "./RankParams.js"
import * as Stage from "./Stage.js"

/**
 * Everything a training job is made of (TrainSetup.ts).
 * @category models
 */
export type TrainSetup = TrainSetupModule.TrainSetup

/**
 * What the backward recomputes instead of keeping (TrainSetup.ts).
 * @category models
 */
export type Recompute = TrainSetupModule.Recompute

/**
 * What one rank reports after a step (StepReport.ts).
 * @category models
 */
export type StepReport = StepReportModule.StepReport

/**
 * Builds a rank's trainer: its groups, its shards (from the seed), its schedule; `faults` are
 * test-only injected faults (Fault.ts); `definition` is the model, loaded from `setup.definition`
 * by the caller (ModelDefinition.load; the built-in model by default). `values` "given": the
 * shards start as zeros for the caller to fill (RankParams.Values).
 * @category constructors
 */
export const make = (
  setup: TrainSetup,
  rank: number,
  faults: ReadonlyArray<Fault.Fault> = [],
  definition: ModelDefinition.ModelDefinition = BuiltinModels.mixtral,
  values: RankParams.Values = "seed",
) => {
  const { parallel, model, batch } = setup
  const s = parallel.sizes
  const fold = Folding.make(parallel)
  const place = Folding.place(fold, rank)
  const group = (f: Families.FamilyName) => Group.ofFamily(parallel, f, rank)
  const groups: Stage.TrainGroups = {
    tp: group("tp"),
    cp: group("cp"),
    tpCp: group("tp-cp"),
    tpDpCp: group("tp-dp-cp"),
    expert: { ep: group("ep"), etp: group("etp"), etpEp: group("etp-ep") },
  }
  const ppGroup = group("pp")
  const sync = RankParams.syncGroups(parallel, rank)
  // What the MoE layers keep across a global batch's micro-batches (global_aux counts).
  const moeState = MoeRunState.make()
  const vpp = parallel.vpp ?? 1
  const part = Partition.make(Partition.inputOf(model.layers, parallel))
  const microBatches = ModelConfig.microBatches(batch, s.dp)
  const schedule = Schedule.make({ pp: s.pp, vpp: parallel.vpp, microBatches })
  const actions = schedule.ranks[place.pp] as ReadonlyArray<Action>
  const chunks = Array.from({ length: vpp }, (_, v) => Partition.layersOf(part, place.pp, v))
  const holdsFirst = place.pp === 0
  const holdsLast = place.pp === s.pp - 1
  const params = RankParams.make(
    InitMethod.withStd(definition.params(model), setup.initMethodStd, model.layers),
    (spec) => Params.isHeld(spec, model.layers, { first: holdsFirst, last: holdsLast, chunks }),
    place,
    s,
    setup.seed,
    setup.dtype,
    values,
  )
  // The distributed optimizer keeps only this rank's parts of the moments; `moments` is then
  // only what it leaves out of its buckets (DistributedOptimizer).
  // The chunk of this rank whose backward makes a parameter's gradient final: the embedding's
  // is the first stage's (chunk 0), the final norm's and output's the last stage's (chunk vpp-1).
  const chunkOf = (spec: Params.ParamSpec) => (spec.layer === -1 ? 0 : spec.layer === model.layers ? vpp - 1 : chunks.findIndex((c) => spec.layer >= c.start && spec.layer < c.end))
  const distributed =
    setup.distributedOptimizer === true
      ? DistributedOptimizer.make(params, sync, rank, setup.dtype, DistributedOptimizer.defaultBucketElements, chunkOf, setup.distributedOptimizerInstances ?? 1)
      : undefined
  const moments = distributed === undefined ? Optimizer.moments(params) : distributed.unbucketed
  const optimizerStateBytes =
    distributed === undefined ? Optimizer.stateBytes(moments) : Object.values(DistributedOptimizer.stateBytes(distributed, params)).reduce((a, b) => a + b, 0)
  const stageOf = (chunk: number) => Partition.globalStage(part, place.pp, chunk)
  const lastStage = Partition.stageCount(part) - 1
  const isFirst = (chunk: number) => stageOf(chunk) === 0
  /** This rank's micro-batch `index` of global batch `step` of `file` (the synthetic language when undefined). */
  const dataOf = (step: number, index: number, file: Blend.Corpus | undefined) =>
    Data.microBatch({
      seed: setup.seed,
      step,
      dpRank: place.dp,
      index,
      microBatch: batch.microBatch,
      microBatches,
      globalBatch: batch.globalBatch,
      seq: model.seq,
      vocab: model.vocab,
      file,
      documents: setup.documents,
      perTokenLoss: setup.perTokenLoss,
    })
  const isLast = (chunk: number) => stageOf(chunk) === lastStage

  const ctxOf = (param: (name: string) => Tensor.Tensor, state = moeState, evaluating = false, routing?: ModelContext.RoutingSite): Stage.StageContext => ({
    model,
    microBatch: batch.microBatch,
    groups,
    cpRank: place.cp,
    microBatchesPerStep: microBatches * s.dp,
    auxLossCoeff: setup.auxLossCoeff,
    moeState: state,
    param,
    recompute: setup.recompute,
    recomputeModules: setup.recomputeModules,
    forward: definition.forward,
    evaluating,
    routing,
  })
  // Every link carries the hidden rows of a micro-batch in the model's layout on this rank.
  const links = PipelineLinks.make({
    stages: part,
    pp: place.pp,
    ppRanks: ppGroup.ranks,
    actions,
    dtype: setup.dtype,
    layout: Stage.hiddenLayout(model, batch.microBatch, groups),
  })

  // bf16: each shard's bf16 copy, made once per step and shared by its micro-batches (ChunkRun).
  const bf16Copies = new Map<RankParams.Held, Tensor.Tensor>()
  // On a device: each shard's upload, made once per step and shared likewise.
  const deviceCopies = new Map<RankParams.Held, Tensor.Tensor>()
  const device = setup.device === undefined ? undefined : Device.ofRank(setup.device, rank)
  const deviceRuntime = device !== undefined && Device.isAccelerator(device) ? runtimeOf(device) : undefined
  const gradRuntime = deviceRuntime
  // The optimizer runs on the device too: the fp32 weights, gradients and (replicated) moments stay
  // there across steps (DeviceOptimizer); the distributed optimizer's buckets and parts as well (DeviceDistributed).
  const onDevice =
    gradRuntime !== undefined &&
    DeviceOptimizer.appliesTo({ dtype: setup.dtype, faults: faults.length > 0 }) &&
    (distributed === undefined || DeviceDistributed.appliesTo(distributed))
      ? DeviceOptimizer.make(gradRuntime, params, moments, setup.precision ?? "fp32")
      : undefined
  const zero = onDevice !== undefined && distributed !== undefined ? DeviceDistributed.make(distributed, onDevice) : undefined
  // Where the step's gradients accumulate: on the device, or the host's (DeviceGrads).
  const grads = DeviceGrads.make(params, gradRuntime, onDevice)
  const deviceGradOf = grads.gradOf

  const step = (k: number) =>
    Effect.gen(function* () {
      const deviceBefore = StepReportModule.deviceMark(deviceRuntime)
      // The parameters stay unchanged until this step's optimizer: products keep their panels.
      const generation = StableWeights.nextGeneration()
      RankParams.zeroGrads(params)
      bf16Copies.clear()
      deviceCopies.clear()
      grads.startStep()
      // The last step's all-gathers into the weights on the device, before this step's copies of them.
      if (zero !== undefined) yield* DeviceDistributed.settle(zero)
      if (onDevice !== undefined) DeviceOptimizer.startStep(onDevice, deviceCopies)
      let lossShare = 0
      const expertRows = new Map<number, Array<number>>()
      // Rows this rank's local experts got, per MoE layer and micro-batch (ExpertOverload).
      const rankRows = new Map<number, Array<number>>()
      const moeStats = MoeStats.accumulator(microBatches, s.dp)
      const activations = RankMemory.activationMeter(() => GradAccumulator.heldBytes(grads.accumulators()))
      const stepStarted = performance.now()
      const span = (name: string, start: number) => setup.span?.({ rank, name, category: "compute", start, end: performance.now() })
      // Routing replay or recording (--routing-replay, --routing-record).
      const routing = RoutingSites.forStep(setup, k)

      /**
       * A chunk's forward (ChunkRun), with its loss share and expert loads counted into the step.
       * Its generator function is made once a step, not once a run (bench/README.md, train suite,
       * twenty-sixth session: Effect.gen).
       */
      function* forwardSteps(microBatch: number, chunk: number, received: Tensor.Tensor | undefined) {
        // The chunk's parameters as the last step's all-gathers left them (DistributedOptimizer).
        if (distributed !== undefined && zero === undefined) yield* DistributedOptimizer.settle(distributed, chunk)
        const layers = chunks[chunk] as Partition.LayerRange
        const stage = stageOf(chunk)
        const data = dataOf(k, microBatch, setup.data)
        const { out, forwarded, keptBytes } = yield* ChunkRun.forward({
          rank,
          microBatch,
          chunk,
          layers,
          isFirst: stage === 0,
          isLast: stage === lastStage,
          params,
          context: (param) => ctxOf(param, moeState, false, routing?.site),
          data,
          received,
          precision: setup.precision,
          bf16Copies,
          device,
          deviceCopies,
          deviceGrads: deviceGradOf,
          generation,
        })
        const moeLayers = MoeStats.statLayersOf(model, layers.start, layers.end, stage === lastStage)
        moeStats.add(moeLayers, out.moeStats)
        out.expertRows.forEach((rows, i) => {
          const layer = moeLayers[i] as number
          const acc = expertRows.get(layer) ?? new Array<number>(rows.length).fill(0)
          expertRows.set(
            layer,
            acc.map((v, e) => v + (rows[e] as number)),
          )
          const perMicroBatch = rankRows.get(layer) ?? new Array<number>(microBatches).fill(0)
          perMicroBatch[microBatch] = rows.reduce((a, b) => a + b, 0)
          rankRows.set(layer, perMicroBatch)
        })
        // The losses' values come down without blocking (a device's sums of them included).
        if (out.loss !== undefined && place.tp === 0) lossShare += (yield* hostValues(out.loss))[0] as number
        if (out.mtp !== undefined && place.tp === 0) lossShare += (yield* hostValues(out.mtp))[0] as number
        lossShare += (yield* hostValues(out.aux))[0] as number
        activations.keep(keptBytes)
        return { output: forwarded.output, backward: (g: Tensor.Tensor | undefined) => Effect.tap(forwarded.backward(g), () => Effect.sync(() => activations.release(keptBytes))) }
      }
      const forward = (microBatch: number, chunk: number, received: Tensor.Tensor | undefined) => Effect.gen(() => forwardSteps(microBatch, chunk, received))

      const times = yield* Interpreter.run(actions, {
        pp: place.pp,
        links,
        // The distributed optimizer's reduce-scatters of a chunk start once its gradients are final.
        chunkDone:
          distributed === undefined
            ? undefined
            : zero !== undefined
              ? (chunk) => DeviceDistributed.startChunk(zero, chunk)
              : (chunk) =>
                  Effect.suspend(() => {
                    grads.bringHome((h) => chunkOf(h.spec) === chunk)
                    return DistributedOptimizer.startChunk(distributed, chunk)
                  }),
        isFirst,
        isLast,
        forward,
        span,
      })
      // Every backward pass of the step has run: the device's sums come to the host, and
      // accumulators no gradient reached hold zeros.
      grads.bringHome(() => true)
      if (onDevice === undefined) RankParams.settleGrads(params.values())
      // With the optimizer on the device, the gradients stay there: each shard's sum of squares comes over.
      const squares = onDevice === undefined ? undefined : yield* DeviceOptimizer.squares(onDevice)
      // Once per global batch: global_aux counts reset, expert biases and quantile betas move (MoeRunState).
      yield* MoeRunState.endGlobalBatch(moeState, sync, model.moe?.biasUpdateRate ?? 0, model.moe?.quantileBalancingEma ?? 0)
      // Test-only (Fault.ts): a rank misbehaving after the step's collectives, before the sync.
      const fault = Fault.at(faults, rank, k + 1)
      if (fault !== undefined)
        lossShare = Fault.inflict(
          fault,
          [...params.values()].map((h) => h.grad),
          lossShare,
        )
      // A non-finite loss or gradient stops the run here, on the rank that has it (NonFinite.ts).
      // On the host the check keeps each gradient's sum of squares (the norm's when no sync changes them).
      const hostSquares = new Map<RankParams.Held, number>()
      const diverged = NonFinite.find(
        lossShare,
        params,
        onDevice === undefined || squares === undefined
          ? NonFinite.keepingSquares(hostSquares)
          : { squares: (h) => squares.get(h) as number, values: (h) => DeviceOptimizer.gradientOnHost(onDevice, h) },
      )
      if (diverged !== undefined) return yield* Effect.fail(diverged)
      const syncStarted = performance.now()
      if (zero !== undefined) yield* DeviceDistributed.reduceScatter(zero)
      else if (distributed !== undefined) yield* DistributedOptimizer.reduceScatter(distributed)
      else yield* RankParams.synchronize(params, sync, setup.dtype, onDevice === undefined ? undefined : DeviceOptimizer.reduce(onDevice))
      // The norm's squares are the synced gradients': the check's where the sync left them (on the device: unless it crosses ranks).
      const deviceSquares = onDevice === undefined ? undefined : RankParams.crossesRanks(sync) ? yield* DeviceOptimizer.squares(onDevice) : squares
      const squaresOf =
        onDevice === undefined ? RankParams.squaresAfterSync(params, sync, rank, hostSquares) : deviceSquares && ((h: RankParams.Held) => deviceSquares.get(h) as number)
      const gradNorm =
        zero !== undefined
          ? yield* DeviceDistributed.globalNorm(zero)
          : distributed !== undefined
            ? yield* DistributedOptimizer.globalNorm(distributed, params)
            : yield* RankParams.globalNorm(params, sync, rank, squaresOf)
      if (!Number.isFinite(gradNorm)) return yield* Effect.fail(NonFinite.ofNorm(gradNorm))
      const lr = LrSchedule.learningRate(setup.optimizer, k)
      const clip = Optimizer.clipScale(setup.optimizer, gradNorm)
      if (zero !== undefined) yield* DeviceDistributed.step(setup.optimizer, zero, k + 1, lr, clip)
      else if (onDevice !== undefined) DeviceOptimizer.step(onDevice, setup.optimizer, k + 1, lr, clip)
      else if (distributed === undefined) Optimizer.step(setup.optimizer, params, moments, k + 1, lr, clip)
      else yield* DistributedOptimizer.step(setup.optimizer, distributed, params, k + 1, lr, clip)
      span("gradient sync + optimizer", syncStarted)
      // The step's panels may go when the cache needs room (the next step's reuse their memory).
      StableWeights.retire(generation)
      setup.span?.({ rank, name: `step ${k + 1}`, category: "step", start: stepStarted, end: performance.now() })
      return {
        loss: lossShare,
        gradNorm,
        lr,
        expertRows: [...expertRows].map(([layer, rows]) => ({ layer, rows })),
        rankRows: [...rankRows].map(([layer, rows]) => ({ layer, rows })),
        moeStats: moeStats.result(),
        ...times,
        optimizerStateBytes,
        memory: RankMemory.report(params, optimizerStateBytes, activations.peak),
        ...(routing?.recorded === undefined ? {} : { routing: routing.recorded }),
        ...StepReportModule.devicePart(deviceRuntime, deviceBefore),
      } satisfies StepReport
    })

  /** Completes what the last step left in flight (all-gathers) and brings the host's shards and moments up to the device's. */
  const settle =
    zero !== undefined
      ? DeviceDistributed.settleHost(zero)
      : distributed !== undefined
        ? DistributedOptimizer.settle(distributed)
        : onDevice !== undefined
          ? Effect.sync(() => DeviceOptimizer.settle(onDevice))
          : Effect.void
  /** Where the optimizer keeps the gradients on the device: the step's synchronised gradients copied into the host's (pleat verify's comparison). */
  const gradientsToHost = () => {
    if (zero !== undefined) DeviceDistributed.gradientsToHost(zero)
    else if (onDevice !== undefined) DeviceOptimizer.gradientsToHost(onDevice)
  }
  /** This rank's share of the loss on the held-out data (Evaluation); undefined without it. */
  // On a device: the weights as the last step left them (the device optimizer's), or uploads of the host's shards on first use.
  const deviceWeights =
    device === undefined
      ? undefined
      : zero !== undefined
        ? DeviceDistributed.weightsNow(zero)
        : Effect.sync(() => (onDevice === undefined ? new Map() : DeviceOptimizer.weightsNow(onDevice)))
  const host = { rank, setup, place, microBatches, dataOf, links, chunks, isFirst, isLast, params, context: ctxOf, moeState }
  const evaluate = Evaluation.of({ distributed: zero === undefined ? distributed : undefined, device, deviceWeights, deviceGrads: deviceGradOf, ...host })
  return { rank, place, params, moments, distributed, moeState, step, settle, gradientsToHost, schedule, microBatches, evaluate }
}
