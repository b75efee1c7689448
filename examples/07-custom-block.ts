// Example 07: a block of your own, written against pleat's public API (`pleat`), trained for a
// few steps under tensor parallelism, and property-tested with `pleat/testing`: under random
// valid mappings it gives what it gives on one rank, output and every gradient.
//
// The block is a pre-norm residual SwiGLU MLP, y = x + MLP(RMSNorm(x)), with its weights split
// over the tensor-parallel group (columns of the up and gate projections, rows of the down
// projection) and its rows sequence-parallel: each tp rank holds rows/tp of the tokens.
//
//   npx tsx examples/07-custom-block.ts
//
// Expected output (abridged):
//   training the block on 2 ranks (tp 2, sequence parallel):
//   step 1 loss 2.624720
//   step 5 loss 0.396944
//   property: the block equals one rank under 12 random mappings (outputs and gradients)
import * as Effect from "effect/Effect"
import { comm, dataflow, runtime, tensor } from "pleat"
import { EqualsOneRank, Mappings } from "pleat/testing"

const { Tensor, Tape, Elementwise, Reduce, Norm, Shape } = tensor
const [rows, hidden, ffn] = [12, 4, 12] // rows and ffn divisible by every tp up to 4

/** Deterministic values in [-1, 1) from a seed (a small linear congruential generator). */
const values = (seed: number, n: number): Array<number> => {
  let s = seed >>> 0
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 31 - 1
  })
}

/** The block's inputs and weights, the same on every rank for a seed. */
const problem = (seed: number) => ({
  x: Tensor.fromArray(values(seed, rows * hidden), [rows, hidden]),
  target: Tensor.fromArray(values(seed + 1, rows * hidden), [rows, hidden]),
  norm: Tensor.fromArray(
    values(seed + 2, hidden).map((v) => 1 + v / 4),
    [hidden],
  ),
  wGate: Tensor.fromArray(values(seed + 3, hidden * ffn), [hidden, ffn]),
  wUp: Tensor.fromArray(values(seed + 4, hidden * ffn), [hidden, ffn]),
  wDown: Tensor.fromArray(values(seed + 5, ffn * hidden), [ffn, hidden]),
})

/** y = x + MLP(RMSNorm(x)) on this rank's rows, the MLP tensor-parallel over `tp`. */
const block = (x: tensor.Tensor.Tensor, norm: tensor.Tensor.Tensor, w: dataflow.DenseMlp.MlpWeights, tp: comm.Group.Group) =>
  Effect.map(dataflow.DenseMlp.forward(Norm.rmsNorm(x, norm), w, { tp, sequenceParallel: true }), (mlp) => Elementwise.add(x, mlp))

/** One rank's share of the problem: its rows, and its shards of the weights (as parameters). */
const shardOf = (p: ReturnType<typeof problem>, tape: tensor.Tape.Tape, index: number, parts: number) => {
  const share = rows / parts
  return {
    x: tape.parameter(Shape.rows(p.x, index * share, (index + 1) * share)),
    target: Shape.rows(p.target, index * share, (index + 1) * share),
    weights: {
      wGate: tape.parameter(dataflow.ParallelLinear.columnShard(p.wGate, index, parts)),
      wUp: tape.parameter(dataflow.ParallelLinear.columnShard(p.wUp, index, parts)),
      wDown: tape.parameter(dataflow.ParallelLinear.rowShard(p.wDown, index, parts)),
    },
  }
}

/** Mean squared error of this rank's rows against the target, as its share of the global loss. */
const lossOf = (y: tensor.Tensor.Tensor, target: tensor.Tensor.Tensor) => {
  const d = Elementwise.sub(y, target)
  return Elementwise.scale(Reduce.sumAll(Elementwise.mul(d, d)), 1 / (rows * hidden))
}

/** Column shards [h, f/t] gathered over tp come back as [t*h, f/t]: put them side by side. */
const columnsOf = (gathered: ReadonlyArray<number>, parts: number, height: number, width: number): Array<number> => {
  const out = new Array<number>(height * width * parts)
  for (let r = 0; r < parts; r++)
    for (let i = 0; i < height; i++) for (let j = 0; j < width; j++) out[i * width * parts + r * width + j] = gathered[(r * height + i) * width + j] as number
  return out
}

/**
 * The rank program pleat/testing runs under every mapping: forward and backward of the block on
 * this rank's tp group, then everything gathered back to global terms.
 */
export const blockCase = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, seed } = args as EqualsOneRank.RankCase
    const config = Mappings.toConfig(mapping)
    const tp = comm.Group.ofFamily(config, "tp", rank)
    const parts = tp.ranks.length
    const tape = Tape.make()
    const mine = shardOf(problem(seed), tape, tp.ranks.indexOf(rank), parts)
    const y = yield* block(mine.x, problem(seed).norm, mine.weights, tp)
    yield* tape.backwardEffect(lossOf(y, mine.target))
    const gather = (t: tensor.Tensor.Tensor | undefined) => Effect.map(comm.Communicator.allGather(tp, t as tensor.Tensor.Tensor), Tensor.toArray)
    return {
      y: yield* gather(y),
      dx: yield* gather(mine.x.grad),
      dGate: columnsOf(yield* gather(mine.weights.wGate.grad), parts, hidden, ffn / parts),
      dUp: columnsOf(yield* gather(mine.weights.wUp.grad), parts, hidden, ffn / parts),
      dDown: yield* gather(mine.weights.wDown.grad),
    }
  })

/** A few steps of plain gradient descent on 2 ranks: every rank updates its own shards. */
const train = async (steps: number, rate: number) => {
  const p = problem(7)
  const tp = comm.Group.world(2)
  console.log("training the block on 2 ranks (tp 2, sequence parallel):")
  const losses = await runtime.Job.runPromise({ world: 2 }, (rank) =>
    Effect.gen(function* () {
      const shards = {
        wGate: dataflow.ParallelLinear.columnShard(p.wGate, rank, 2),
        wUp: dataflow.ParallelLinear.columnShard(p.wUp, rank, 2),
        wDown: dataflow.ParallelLinear.rowShard(p.wDown, rank, 2),
      }
      const history: Array<number> = []
      for (let step = 0; step < steps; step++) {
        const tape = Tape.make()
        const x = Shape.rows(p.x, rank * 6, (rank + 1) * 6)
        const w = { wGate: tape.parameter(shards.wGate), wUp: tape.parameter(shards.wUp), wDown: tape.parameter(shards.wDown) }
        const loss = lossOf(yield* block(x, p.norm, w, tp), Shape.rows(p.target, rank * 6, (rank + 1) * 6))
        yield* tape.backwardEffect(loss)
        history.push(Tensor.toArray(yield* comm.Communicator.allReduce(tp, Shape.reshape(loss, [1])))[0] as number)
        for (const k of ["wGate", "wUp", "wDown"] as const) shards[k] = Elementwise.sub(shards[k], Elementwise.scale(w[k].grad as tensor.Tensor.Tensor, rate))
      }
      return history
    }),
  )
  for (const [i, loss] of (losses[0] as Array<number>).entries()) console.log(`step ${i + 1} loss ${loss.toFixed(6)}`)
}

const main = async () => {
  await train(5, 0.5)
  const numRuns = 12
  await EqualsOneRank.check({ module: import.meta.url, export: "blockCase", mappings: Mappings.mappings({ maxWorld: 4 }), numRuns })
  console.log(`property: the block equals one rank under ${numRuns} random mappings (outputs and gradients)`)
}

// Run only as a script, and without a top-level await: the ranks import this module for
// `blockCase`, which must not wait on its own evaluation.
if (import.meta.url === `file://${process.argv[1]}`)
  main().catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
