/**
 * attention: the transformer block (RMSNorm -> attention -> residual -> RMSNorm -> MLP ->
 * residual) forward + backward, on one rank and on 8 local ranks (tp 2 x cp 2 x dp 2, sequence
 * parallel), with the same FLOPs: the 8 ranks process the 2 dp batches that one rank processes
 * one after the other. The local backends run every rank on this thread, so the one-rank run,
 * measured in the same run, is the ceiling: the 8-rank tokens/s has the one-rank tokens/s as
 * its limit, and the time ratio 8 ranks / 1 rank has limit 1 (above 1 is the parallel
 * overhead). The 8-rank rows run in both modes: "local", the copying mode `pleat train` uses
 * (every collective result copied into each member's own buffer), and "local-zero-copy" (equal
 * results shared). The one-rank row has no limit (it is the reference), and context parallelism
 * by allgather of K/V against the p2p ring (same math) is a plain time ratio: no limit, since
 * neither run bounds the other.
 *
 * The attention core alone (the native float32 kernels, forward + backward, S 2048, 8 query and 2
 * kv heads of 64) with the sequence packed from documents of 256 tokens (--reset-attention-mask:
 * each query sees its own document) against plain causal attention: its rate of visible
 * (query, key) pairs per second has the causal rate, measured in the same run, as its limit
 * (the kernels skip key blocks before a query block's documents; 1.0 means the masked run costs
 * exactly its share of the work).
 */
import * as Effect from "effect/Effect"
import * as ParallelLinear from "../../dist/dataflow/ParallelLinear.js"
import type * as SelfAttention from "../../dist/attention/SelfAttention.js"
import * as DenseMlp from "../../dist/dataflow/DenseMlp.js"
import * as Group from "../../dist/comm/Group.js"
import * as Folding from "../../dist/mapping/Folding.js"
import * as ParallelConfig from "../../dist/mapping/ParallelConfig.js"
import * as Block from "../../dist/model/Block.js"
import * as Cpu from "../../dist/native/Cpu.js"
import * as Job from "../../dist/runtime/Job.js"
import { sumAll } from "../../dist/tensor/ops/Reduce.js"
import * as Shape from "../../dist/tensor/ops/Shape.js"
import * as Tape from "../../dist/tensor/Tape.js"
import * as Tensor from "../../dist/tensor/Tensor.js"
import { type BenchContext, type BenchRecord, record, wallSeconds } from "../harness.js"

let seed = 11
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1
const tensor = (shape: Array<number>) => {
  const t = Tensor.zeros(shape)
  for (let i = 0; i < t.size; i++) t.data[i] = random() * 0.3
  return t
}

const hidden = 128
const heads = 4
const kvHeads = 2
const headDim = hidden / heads
const ffn = 256
const seq = 256
const batch = 1

const weights = () => ({
  attentionNorm: Tensor.full([hidden], 1),
  ffnNorm: Tensor.full([hidden], 1),
  wq: tensor([hidden, heads * headDim]),
  wk: tensor([hidden, kvHeads * headDim]),
  wv: tensor([hidden, kvHeads * headDim]),
  wo: tensor([heads * headDim, hidden]),
  wGate: tensor([hidden, ffn]),
  wUp: tensor([hidden, ffn]),
  wDown: tensor([ffn, hidden]),
})

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const w = weights()
  const xs = [tensor([batch * seq, hidden]), tensor([batch * seq, hidden])]
  const one = Group.make("one", [0])
  // Weight shards per tp size and rank, made once: the timed runs do only the block's work.
  type Shards = { attention: SelfAttention.AttentionWeights; mlp: DenseMlp.MlpWeights }
  const shardsOf = (tpRank: number, n: number): Shards => ({
    attention: {
      wq: ParallelLinear.columnShard(w.wq, tpRank, n),
      wk: ParallelLinear.columnShard(w.wk, tpRank, n),
      wv: ParallelLinear.columnShard(w.wv, tpRank, n),
      wo: ParallelLinear.rowShard(w.wo, tpRank, n),
    },
    mlp: { wGate: ParallelLinear.columnShard(w.wGate, tpRank, n), wUp: ParallelLinear.columnShard(w.wUp, tpRank, n), wDown: ParallelLinear.rowShard(w.wDown, tpRank, n) },
  })
  const whole = shardsOf(0, 1)
  const halves = [shardsOf(0, 2), shardsOf(1, 2)]
  const block = (x: Tensor.Tensor, tp: Group.Group, cp: Group.Group, cpRank: number, shards: Shards, sp: boolean, exchange: "allgather" | "ring") =>
    Effect.gen(function* () {
      const tape = Tape.make()
      const p = (t: Tensor.Tensor) => tape.parameter(t)
      const attention: SelfAttention.AttentionConfig = { batch, seq, heads, kvHeads, headDim, tp, cp, sequenceParallel: sp, cpExchange: exchange }
      const a = shards.attention
      const bw = { attentionNorm: p(w.attentionNorm), ffnNorm: p(w.ffnNorm), attention: { wq: p(a.wq), wk: p(a.wk), wv: p(a.wv), wo: p(a.wo) } }
      const mlp = { wGate: p(shards.mlp.wGate), wUp: p(shards.mlp.wUp), wDown: p(shards.mlp.wDown) }
      const out = yield* Block.forward(p(x), bw, attention, cpRank, (t) => DenseMlp.forward(t, mlp, { tp, sequenceParallel: sp }))
      yield* tape.backwardEffect(sumAll(out))
    })
  const single = () => Job.runPromise({ world: 1 }, () => Effect.forEach(xs, (x) => block(x, one, one, 0, whole, false, "allgather")))
  const config = ParallelConfig.make({ world: 8, tp: 2, cp: 2 })
  const fold = Folding.make(config)
  // Each rank's rows (its cp positions of its dp batch, then its tp block) and groups, made once.
  const inputs = Array.from({ length: 8 }, (_, rank) => {
    const p = Folding.place(fold, rank)
    const positions = Array.from({ length: seq / 2 }, (_, i) => (i < seq / 4 ? p.cp * (seq / 4) + i : (3 - p.cp) * (seq / 4) + i - seq / 4))
    const rows = positions.slice(p.tp * (seq / 4), (p.tp + 1) * (seq / 4))
    const full = xs[p.dp] as Tensor.Tensor
    const x = Tensor.fromArray(
      rows.flatMap((r) => Array.from(Shape.rows(full, r, r + 1).data)),
      [rows.length, hidden],
    )
    return { x, p, tp: Group.ofFamily(config, "tp", rank), cp: Group.ofFamily(config, "cp", rank) }
  })
  const parallel =
    (exchange: "allgather" | "ring", backend: "local" | "local-zero-copy" = "local-zero-copy") =>
    () =>
      Job.runPromise({ world: 8, backend }, (rank) => {
        const r = inputs[rank] as (typeof inputs)[number]
        return block(r.x, r.tp, r.cp, r.p.cp, halves[r.p.tp] as Shards, true, exchange)
      })
  const oneSeconds = await wallSeconds(single, 3)
  // Alternate the two exchanges so JIT warm-up and machine noise fall on both alike.
  // The copying mode runs in the same rounds, so noise falls on all three alike.
  let gatherSeconds = 0
  let ringSeconds = 0
  let copyingSeconds = 0
  for (let round = 0; round < 3; round++) {
    gatherSeconds += await wallSeconds(parallel("allgather"), 1)
    ringSeconds += await wallSeconds(parallel("ring"), 1)
    copyingSeconds += await wallSeconds(parallel("allgather", "local"), 1)
  }
  gatherSeconds /= 3
  ringSeconds /= 3
  copyingSeconds /= 3
  const tokens = 2 * batch * seq
  ctx.log(
    `attention: block fwd+bwd one rank ${(oneSeconds * 1e3).toFixed(0)} ms, 8 ranks ${(gatherSeconds * 1e3).toFixed(0)} ms (allgather, zero-copy) ${(ringSeconds * 1e3).toFixed(0)} ms (ring, zero-copy) ${(copyingSeconds * 1e3).toFixed(0)} ms (allgather, copying)`,
  )
  const modes = [
    { backend: "local", seconds: copyingSeconds },
    { backend: "local-zero-copy", seconds: gatherSeconds },
  ]
  return [
    record(ctx, { case: `block fwd+bwd, 1 rank (H ${hidden}, S ${seq}, 2 sequences)`, metric: "throughput", value: tokens / oneSeconds, unit: "tokens/s" }),
    ...modes.flatMap(({ backend, seconds }) => [
      record(ctx, {
        case: `block fwd+bwd, 8 ranks tp2 x cp2 x dp2, SP (same FLOPs, ${backend})`,
        metric: "throughput (limit: 1 rank)",
        value: tokens / seconds,
        unit: "tokens/s",
        limit: tokens / oneSeconds,
      }),
      record(ctx, { case: `block fwd+bwd, 8 ranks vs 1 rank (${backend})`, metric: "time ratio", value: seconds / oneSeconds, unit: "x", limit: 1 }),
    ]),
    record(ctx, { case: `context parallel K/V: ring vs allgather (8 ranks, local-zero-copy)`, metric: "time ratio", value: ringSeconds / gatherSeconds, unit: "x" }),
    ...(await documentRecords(ctx)),
  ]
}

/** The attention core on a sequence of documents against plain causal attention (see the header). */
const documentRecords = async (ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> => {
  const s = 2048
  const document = 256
  const shape = { b: 1, sq: s, sk: s, hq: 8, hkv: 2, d: 64, dv: 64 }
  const fill = (n: number) => Float32Array.from({ length: n }, () => random() * 0.3)
  const q = fill(s * shape.hq * shape.d)
  const k = fill(s * shape.hkv * shape.d)
  const v = fill(s * shape.hkv * shape.d)
  const gradOut = fill(s * shape.hq * shape.dv)
  const out = new Float32Array(gradOut.length)
  const lse = new Float64Array(s * shape.hq)
  const grads = { gradQ: new Float32Array(q.length), gradK: new Float32Array(k.length), gradV: new Float32Array(v.length) }
  const firstKeys = Int32Array.from({ length: s }, (_, i) => i - (i % document))
  const pass = (queryFirstKeys: Int32Array | undefined) => async () => {
    const masking = { ...shape, queryFirstKeys }
    Cpu.attention({ q, k, v, out, lse, ...masking })
    Cpu.attentionBackward({ q, k, v, out, gradOut, lse, gradQ: grads.gradQ, gradK: grads.gradK, gradV: grads.gradV, ...masking })
  }
  // Alternate the two so noise falls on both alike.
  let causalSeconds = 0
  let documentSeconds = 0
  for (let round = 0; round < 3; round++) {
    causalSeconds += await wallSeconds(pass(undefined), 2)
    documentSeconds += await wallSeconds(pass(firstKeys), 2)
  }
  const causalPairs = (s * (s + 1)) / 2
  const documentPairs = (s / document) * ((document * (document + 1)) / 2)
  ctx.log(`attention: core fwd+bwd S ${s} causal ${((causalSeconds / 3) * 1e3).toFixed(1)} ms, documents of ${document} ${((documentSeconds / 3) * 1e3).toFixed(1)} ms`)
  const rate = (pairs: number, seconds: number) => (pairs * shape.hq) / (seconds / 3)
  return [
    record(ctx, {
      case: `core fwd+bwd S ${s}, 8/2 heads of 64, documents of ${document} (limit: causal)`,
      metric: "visible pairs rate",
      value: rate(documentPairs, documentSeconds) / 1e9,
      unit: "G pairs/s",
      limit: rate(causalPairs, causalSeconds) / 1e9,
    }),
  ]
}
