// The rank program of DispatchRecycling.prop.ts: dispatcher steps of fresh random tokens, run
// unchanged on every backend (a named export with plain-data args, which a worker can import).
import * as Effect from "effect/Effect"
import * as Group from "../../src/comm/Group.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as AllGatherDispatcher from "../../src/moe/AllGatherDispatcher.js"
import * as AllToAllDispatcher from "../../src/moe/AllToAllDispatcher.js"
import type * as Dispatcher from "../../src/moe/Dispatcher.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import * as StorageRecycler from "../../src/tensor/StorageRecycler.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { rng } from "../tensor/gradcheck.js"
import { identityExperts } from "./identityExperts.js"

export interface RecyclingArgs {
  readonly ep: number
  readonly seed: number
  readonly steps: number
  readonly experts: "identity" | "swiglu"
  readonly retains: boolean
  readonly probsAt: Dispatcher.ProbsAt
  readonly dispatcher: "all-to-all" | "allgather"
}

export interface RecyclingResult {
  /** Each step's output, as a hash of its bits (FNV-1a over the float32 words). */
  readonly outputs: ReadonlyArray<number>
  /** What this rank's thread's recycler did meanwhile (shared by the ranks of one thread). */
  readonly recycled: number
  readonly reused: number
}

export const hidden = 1024

/** Rank `rank`'s expert groups when all `ep` ranks form one ep group (etp 1). */
export const epGroups = (ep: number, rank: number) => {
  const config = ParallelConfig.make({ world: ep, ep, etp: 1 })
  return { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
}

const hashOf = (t: Tensor.Tensor): number => {
  const words = new Uint32Array(Float32Array.from(t.data).buffer)
  let h = 0x811c9dc5
  for (let i = 0; i < words.length; i++) h = Math.imul(h ^ (words[i] as number), 0x01000193) >>> 0
  return h
}

/** `args.steps` dispatcher steps of fresh random tokens on this rank of EP `args.ep`. */
export const recyclingSteps = (rank: number, raw: unknown) =>
  Effect.gen(function* () {
    const args = raw as RecyclingArgs
    const { ep } = args
    const groups = epGroups(ep, rank)
    const numExperts = 2 * ep
    const r = rng(args.seed + 101 * rank)
    const local = numExperts / ep
    const ffn = 8
    const weight = (shape: Array<number>) =>
      Tensor.fromArray(
        Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (r() - 0.5) * 0.2),
        shape,
      )
    const w = { wGate: weight([local, hidden, ffn]), wUp: weight([local, hidden, ffn]), wDown: weight([local, ffn, hidden]) }
    const run = args.dispatcher === "all-to-all" ? AllToAllDispatcher.run : AllGatherDispatcher.run
    const before = StorageRecycler.stats()
    const outputs: Array<number> = []
    for (let i = 0; i < args.steps; i++) {
      // 320-351 tokens, each to 2 of the experts: ~640 rows of 4 KiB to receive, more than the
      // recycler's 1 MiB, a little more or less from step to step (as routing varies).
      const t = 320 + Math.floor(r() * 32)
      const mask = new Uint8Array(t * numExperts)
      for (let k = 0; k < t; k++) {
        const first = Math.floor(r() * numExperts)
        mask[k * numExperts + first] = 1
        mask[k * numExperts + ((first + 1 + Math.floor(r() * (numExperts - 1))) % numExperts)] = 1
      }
      const tokens = Tensor.fromArray(
        Float32Array.from({ length: t * hidden }, () => r() * 2 - 1),
        [t, hidden],
      )
      const probs = Tensor.fromArray(
        Array.from(mask, (m) => m * r()),
        [t, numExperts],
      )
      const { output } = yield* run({
        tokens,
        probs,
        map: RoutingMap.make(t, numExperts, mask),
        numExperts,
        experts: w,
        groups,
        ...(args.experts === "identity" ? { compute: identityExperts } : {}),
        computeRetains: args.retains,
        probsAt: args.probsAt,
      })
      outputs.push(hashOf(output))
    }
    const after = StorageRecycler.stats()
    return { outputs, recycled: after.recycled - before.recycled, reused: after.reused - before.reused } satisfies RecyclingResult
  })
