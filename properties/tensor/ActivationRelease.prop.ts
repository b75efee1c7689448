// After a backward pass, ActivationRelease hands the forward's op outputs back to the recycler
// (tensor/ActivationRelease.ts): on random graphs over tensors in buffers of their own (so that
// the checking mode the suites run in detaches each one handed back at once), exactly the outputs
// that were made during the forward by a node of their own are taken (every one of them reads
// empty afterwards), while the leaves, the views of other tensors (reshape, rows), the survivors
// the caller names, storage made before the forward that an op hands out (a cache), and the
// input and output of an effectful node (a collective's) keep their
// values, unless that collective's storage is private (its transport copied the input and made
// the output for this rank alone: Node.privateStorage), whose output is taken like any op's and
// whose backward hands its consumed gradient back (BackwardPass.giveEffect). A second forward
// after the release, which reuses the recycled buffers, gives the first one's loss and gradients
// bit for bit.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ActivationRelease from "../../src/tensor/ActivationRelease.js"
import * as Autograd from "../../src/tensor/Autograd.js"
import * as DType from "../../src/tensor/DType.js"
import { add, mul, silu, sub } from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import { reshape, rows } from "../../src/tensor/ops/Shape.js"
import * as StorageRecycler from "../../src/tensor/StorageRecycler.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

type Step = { readonly op: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8; readonly i: number; readonly j: number }
const stepArb = fc.record({ op: fc.constantFrom<Step["op"]>(0, 1, 2, 3, 4, 5, 6, 7, 8), i: fc.nat(), j: fc.nat() })

/** Rows and columns of every tensor: 32 KB rows, so each tensor has a buffer of its own. */
const [R, C] = [4, 8192]

/** An effectful node that copies its input (as a collective would, into new storage). */
const collective = (t: Tensor.Tensor): Tensor.Tensor => Autograd.resultEffect("fakeCollective", [t], DType.copyOf(t.data), t.shape, (g) => Effect.succeed([g]))

/**
 * A collective of private storage: its output is a copy made for this rank, and its backward
 * gives a new copy of the gradient (as a transport would deliver the adjoint's result).
 */
const privateCollective = (t: Tensor.Tensor): Tensor.Tensor =>
  Autograd.resultEffect("privateCollective", [t], DType.copyOf(t.data), t.shape, (g) => Effect.sync(() => [Tensor.fromStorage(DType.copyOf(g.data), g.shape)]), true)

interface Run {
  readonly tape: Tape.Tape
  readonly loss: Tensor.Tensor
  readonly made: ReadonlyArray<{ readonly t: Tensor.Tensor; readonly own: boolean }>
  readonly survivor: Tensor.Tensor
  readonly spared: ReadonlyArray<Tensor.Tensor>
}

/** An op whose output is storage made before the forward (a cache it hands out), not its input's. */
const cached = (t: Tensor.Tensor, cache: Tensor.Tensor): Tensor.Tensor => Autograd.result("cached", [t], cache.data, cache.shape, () => [undefined])

const forward = (leaves: ReadonlyArray<Tensor.Tensor>, steps: ReadonlyArray<Step>, cache: Tensor.Tensor): Run => {
  const tape = leaves[0]?.tape as Tape.Tape
  const nodes: Array<Tensor.Tensor> = [...leaves]
  const made: Array<{ t: Tensor.Tensor; own: boolean }> = []
  const spared: Array<Tensor.Tensor> = []
  for (const s of steps) {
    const u = nodes[s.i % nodes.length] as Tensor.Tensor
    const v = nodes[s.j % nodes.length] as Tensor.Tensor
    let t: Tensor.Tensor
    let own = true
    if (s.op === 0) t = add(u, v)
    else if (s.op === 1) t = mul(u, v)
    else if (s.op === 2) t = sub(u, v)
    else if (s.op === 3) t = silu(u)
    else if (s.op === 4) {
      t = reshape(reshape(u, [R * 2, C / 2]), [R, C])
      own = false
    } else if (s.op === 5) {
      // A view of u's rows, widened back by an add (whose output is its own).
      const part = rows(u, 0, R)
      made.push({ t: part, own: false })
      t = add(part, v)
    } else if (s.op === 6) {
      t = collective(u)
      spared.push(u, t)
      own = false
    } else if (s.op === 8) {
      t = privateCollective(u)
    } else {
      t = cached(u, cache)
      own = false
    }
    made.push({ t, own })
    nodes.push(t)
  }
  const survivor = nodes[nodes.length - 1] as Tensor.Tensor
  const loss = Reduce.sumAll(nodes.slice(leaves.length).reduce((acc, t) => add(acc, t), survivor))
  return { tape, loss, made, survivor, spared }
}

const leavesOf = (values: ReadonlyArray<number>, tape: Tape.Tape): Array<Tensor.Tensor> =>
  values.map((x, i) =>
    tape.parameter(
      Tensor.fromArray(
        Array.from({ length: R * C }, (_, k) => (((k + i) % 5) - 2) * x * 0.25),
        [R, C],
        { dtype: "float32" },
      ),
    ),
  )

describe("ActivationRelease", () => {
  test("takes back exactly the forward's own outputs and private collectives'; leaves, views, survivors and other collectives' tensors keep their values; a second run gives the same bits", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: -2, max: 2 }), { minLength: 1, maxLength: 3 }), fc.array(stepArb, { minLength: 1, maxLength: 8 }), async (values, steps) => {
        const results: Array<{ loss: number; grads: Array<Float32Array> }> = []
        for (let round = 0; round < 2; round++) {
          const tape = Tape.make()
          const leaves = leavesOf(values, tape)
          const cache = Tensor.fromStorage(DType.copyOf(new Float32Array(R * C).fill(0.5)), [R, C])
          const since = StorageRecycler.serial()
          const run = forward(leaves, steps, cache)
          const nodes = tape.recorded()
          await Effect.runPromise(tape.backwardEffect(run.loss))
          const loss = Tensor.item(run.loss)
          const survivorValues = Float32Array.from(run.survivor.data)
          ActivationRelease.release(nodes, since, [run.survivor, run.loss])
          const keeps = (t: Tensor.Tensor) =>
            leaves.includes(t) || t.hostStorage === run.survivor.hostStorage || run.spared.some((s) => DType.overlaps(s.data, t.hostStorage as DType.Storage))
          for (const { t, own } of run.made) {
            const storage = t.hostStorage as DType.Storage
            const kept = !own || keeps(t) || DType.overlaps(storage, run.survivor.hostStorage as DType.Storage)
            // A view's storage goes when what it views goes; only own outputs are checked as taken.
            if (own) expect([t.op, storage.length]).toEqual([t.op, kept ? R * C : 0])
          }
          for (const leaf of leaves) expect(leaf.data.length).toBe(R * C)
          expect(cache.data.length).toBe(R * C)
          for (const s of run.spared) expect(s.data.length).toBe(R * C)
          expect(run.survivor.data).toEqual(survivorValues)
          results.push({ loss, grads: leaves.map((l) => Float32Array.from(l.grad?.data ?? new Float32Array(0))) })
        }
        const [first, second] = results as [(typeof results)[0], (typeof results)[0]]
        expect(Object.is(first.loss, second.loss)).toBe(true)
        first.grads.forEach((g, i) => expect(second.grads[i]).toEqual(g))
      }),
      { numRuns: 25 },
    )
  }, 120_000)
})
