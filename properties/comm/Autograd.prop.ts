// Autograd through collectives: gradients of a loss summed over ranks, through each collective
// and its adjoint, equal central finite differences of the whole multi-rank function (float64).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Diff from "../../src/comm/Differentiable.js"
import type { Group } from "../../src/comm/Group.js"
import * as Job from "../../src/runtime/Job.js"
import * as Elementwise from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { relativeError } from "../tensor/gradcheck.js"
import { mappingGroups, valuesOf } from "./backends.js"

type Collective =
  | "allGather"
  | "allGatherV"
  | "reduceScatter"
  | "reduceScatterV"
  | "allReduce"
  | "allToAllV"
  | "chunks received"
  | "chunks sent"
  | "chunks gathered"
  | "chunks combined"
  | "chunks weighted"
  | "broadcast"
const collectives: ReadonlyArray<Collective> = [
  "allGather",
  "allGatherV",
  "reduceScatter",
  "reduceScatterV",
  "allReduce",
  "allToAllV",
  "chunks received",
  "chunks sent",
  "chunks gathered",
  "chunks combined",
  "chunks weighted",
  "broadcast",
]
const cols = 2

/** The chunked exchanges' rows of chunk l from group member s to member j (2 chunks, zero-size ones included). */
const chunks = 2
const chunkRows = (s: number, j: number, l: number) => (s + 2 * j + l) % 2
const chunkSplits = (group: Group, rank: number) => {
  const me = group.ranks.indexOf(rank)
  const n = group.ranks.length * chunks
  return {
    send: Array.from({ length: n }, (_, i) => chunkRows(me, Math.floor(i / chunks), i % chunks)),
    recv: Array.from({ length: n }, (_, i) => chunkRows(Math.floor(i / chunks), me, i % chunks)),
  }
}

/** Rows of rank r's input for each collective (they must fit the collective's rules). */
const rowsOf = (c: Collective, group: Group, rank: number): number => {
  const n = group.ranks.length
  switch (c) {
    case "allGatherV":
      return rank % 3
    case "reduceScatter":
    case "reduceScatterV":
    case "allReduce":
      return n
    case "allToAllV":
      return group.ranks.reduce((acc, _, j) => acc + ((rank + j) % 2), 0)
    case "chunks received":
    case "chunks sent":
    case "chunks combined":
    case "chunks weighted":
      return chunkSplits(group, rank).send.reduce((a, b) => a + b, 0)
    case "chunks gathered":
      // The send buffer is gathered from 3 rows (each sent 0, 1 or more times).
      return 3
    default:
      return 2
  }
}

const apply = (c: Collective, group: Group, rank: number, x: Tensor.Tensor) => {
  const n = group.ranks.length
  switch (c) {
    case "allGather":
      return Diff.allGather(group, x)
    case "allGatherV":
      return Effect.map(Diff.allGatherV(group, x), (r) => r.tensor)
    case "reduceScatter":
      return Diff.reduceScatter(group, x)
    case "reduceScatterV":
      // Uneven counts: member 0 gets 2 rows, the last none (n >= 2).
      return Diff.reduceScatterV(group, x, n === 1 ? [1] : group.ranks.map((_, i) => (i === 0 ? 2 : i === n - 1 ? 0 : 1)))
    case "allReduce":
      return Diff.allReduce(group, x)
    case "allToAllV":
      return Effect.map(
        Diff.allToAllV(
          group,
          x,
          group.ranks.map((_, j) => (rank + j) % 2),
        ),
        (r) => r.tensor,
      )
    case "chunks gathered": {
      const { send, recv } = chunkSplits(group, rank)
      const sendRows = Int32Array.from({ length: send.reduce((a, b) => a + b, 0) }, (_, r) => (r + rank) % 3)
      const exchange = { chunks, chunkOrder: "received" as const, sendSplits: send, recvSplits: recv }
      return Effect.map(Diff.allToAllVChunks(group, [x], exchange, [sendRows]), ([y]) => y as Tensor.Tensor)
    }
    case "chunks combined": {
      // The received rows summed onto 3 tokens (each token gets 0, 1 or more rows).
      const { send, recv } = chunkSplits(group, rank)
      const index = Int32Array.from({ length: recv.reduce((a, b) => a + b, 0) }, (_, r) => (2 * r + rank) % 3)
      return Diff.allToAllVCombine(group, x, { chunks, chunkOrder: "received", sendSplits: send, recvSplits: recv }, { index, tokens: 3 })
    }
    case "chunks weighted": {
      // Each row weighted by the sum of its values as it is summed onto its token: the sender's
      // weights take the gradient, the receiver's copy (the same values, exchanged as the MoE
      // dispatcher exchanges the probs) weights the sum.
      const { send, recv } = chunkSplits(group, rank)
      const index = Int32Array.from({ length: recv.reduce((a, b) => a + b, 0) }, (_, r) => (2 * r + rank) % 3)
      const exchange = { chunks, chunkOrder: "received" as const, sendSplits: send, recvSplits: recv }
      const weights = Reduce.sum(x, 1)
      return Effect.gen(function* () {
        const [copy] = yield* Diff.allToAllVChunks(group, [Shape.reshape(weights, [weights.size, 1])], exchange)
        return yield* Diff.allToAllVCombine(group, x, exchange, { index, tokens: 3, weights: (copy as Tensor.Tensor).readHost() }, weights)
      })
    }
    case "chunks received":
    case "chunks sent": {
      const { send, recv } = chunkSplits(group, rank)
      const exchange = { chunks, chunkOrder: c === "chunks received" ? ("received" as const) : ("sent" as const), sendSplits: send, recvSplits: recv }
      return Effect.map(Diff.allToAllVChunks(group, [x], exchange), ([y]) => y as Tensor.Tensor)
    }
    case "broadcast":
      return Diff.broadcast(group, x, n - 1)
  }
}

/** Runs the job: every rank computes sum(exp(collective(x_r)) * w_r); returns losses and grads. */
const evaluate = (world: number, groupOf: (r: number) => Group, c: Collective, inputs: ReadonlyArray<Array<number>>) =>
  Job.runPromise({ world, timeoutMs: 5000 }, (rank) =>
    Effect.gen(function* () {
      const group = groupOf(rank)
      const tape = Tape.make({ name: `rank ${rank}` })
      const x = tape.parameter(Tensor.fromArray(inputs[rank] as Array<number>, [rowsOf(c, group, rank), cols], { dtype: "float64" }))
      const y = yield* apply(c, group, rank, x)
      const w = Tensor.fromArray(
        valuesOf(rank, y.size, 3).map((v) => v / 5),
        y.shape,
        { dtype: "float64" },
      )
      const loss = Reduce.sumAll(Elementwise.mul(Elementwise.exp(Elementwise.scale(y, 0.1)), w))
      const value = Tensor.item(loss)
      if (loss.requiresGrad) yield* tape.backwardEffect(loss)
      return { value, grad: x.grad === undefined ? new Array<number>(x.size).fill(0) : Tensor.toArray(x.grad) }
    }),
  )

describe("autograd through collectives", () => {
  test("every collective's adjoint gives the finite-difference gradient of the summed loss", async () => {
    await fc.assert(
      fc.asyncProperty(
        mappingGroups.filter((m) => m.world <= 8),
        fc.constantFrom(...collectives),
        async ({ world, groupOf }, c) => {
          const inputs = Array.from({ length: world }, (_, r) => valuesOf(r, rowsOf(c, groupOf(r), r) * cols, 1))
          const analytic = await evaluate(world, groupOf, c, inputs)
          const total = (xs: ReadonlyArray<Array<number>>) => evaluate(world, groupOf, c, xs).then((rs) => rs.reduce((a, r) => a + r.value, 0))
          const h = 1e-5
          for (let r = 0; r < world; r++) {
            for (let j = 0; j < (inputs[r] as Array<number>).length; j++) {
              const shifted = (d: number) => inputs.map((xs, k) => (k === r ? xs.map((v, i) => (i === j ? v + d : v)) : xs))
              const numeric = ((await total(shifted(h))) - (await total(shifted(-h)))) / (2 * h)
              const a = (analytic[r] as { grad: Array<number> }).grad[j] as number
              expect(relativeError(a, numeric), `${c} rank ${r} element ${j}: ${a} vs ${numeric}`).toBeLessThan(1e-6)
            }
          }
        },
      ),
      { numRuns: 25 },
    )
  })
})
