// Rank programs of the pleat/testing properties, run through the kit's own runner on local
// fibers and worker threads: a tensor-parallel SwiGLU MLP in global terms (which must pass),
// and two broken programs (which the runner must catch, naming the mapping).
import * as Effect from "effect/Effect"
import * as Communicator from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as DenseMlp from "../../src/dataflow/DenseMlp.js"
import * as ParallelLinear from "../../src/dataflow/ParallelLinear.js"
import * as Elementwise from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import type * as EqualsOneRank from "../../src/testing/EqualsOneRank.js"
import * as Mappings from "../../src/testing/Mappings.js"

const [rows, hidden, ffn] = [12, 3, 12]

const values = (seed: number, n: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 0.9)
const f64 = (seed: number, shape: ReadonlyArray<number>) =>
  Tensor.fromArray(
    values(
      seed,
      shape.reduce((a, b) => a * b, 1),
    ),
    shape,
    { dtype: "float64" },
  )

/** The dense MLP with its weights split over the tp group and its rows sequence-parallel. */
export const tpMlp = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, seed } = args as EqualsOneRank.RankCase
    const tp = Group.ofFamily(Mappings.toConfig(mapping), "tp", rank)
    const [parts, index] = [tp.ranks.length, tp.ranks.indexOf(rank)]
    const share = rows / parts
    const tape = Tape.make()
    const x = tape.parameter(Shape.rows(f64(seed, [rows, hidden]), index * share, (index + 1) * share))
    const wDown = tape.parameter(ParallelLinear.rowShard(f64(seed + 3, [ffn, hidden]), index, parts))
    const w = { wGate: ParallelLinear.columnShard(f64(seed + 1, [hidden, ffn]), index, parts), wUp: ParallelLinear.columnShard(f64(seed + 2, [hidden, ffn]), index, parts), wDown }
    const y = yield* DenseMlp.forward(x, w, { tp, sequenceParallel: true })
    const r = Shape.rows(f64(seed + 4, [rows, hidden]), index * share, (index + 1) * share)
    yield* tape.backwardEffect(Reduce.sumAll(Elementwise.mul(y, r)))
    const gather = (t: Tensor.Tensor) => Effect.map(Communicator.allGather(tp, t), Tensor.toArray)
    return { y: yield* gather(y), dx: yield* gather(x.grad as Tensor.Tensor), dDown: yield* gather(wDown.grad as Tensor.Tensor) }
  })

/** Forgets to gather: each rank returns only its own rows (wrong whenever tp > 1). */
export const ungathered = (rank: number, args: unknown) =>
  Effect.map(tpMlp(rank, args), (o) => ({
    ...o,
    y: o.y.slice(0, o.y.length / Group.ofFamily(Mappings.toConfig((args as EqualsOneRank.RankCase).mapping), "tp", rank).ranks.length),
  }))

/** Depends on the data-parallel coordinate: wrong only where dp > 1. */
export const dpDependent = (rank: number, args: unknown) =>
  Effect.map(tpMlp(rank, args), (o) => {
    const dp = Group.ofFamily(Mappings.toConfig((args as EqualsOneRank.RankCase).mapping), "dp", rank)
    return { ...o, dx: o.dx.map((v) => v * (1 + dp.ranks.indexOf(rank))) }
  })
