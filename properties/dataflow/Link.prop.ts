// Links check what they carry on both ends: dtype, dims and layout (the layout a sender claims,
// and the local shape of the link's layout); the sender fails naming the link. Messages are
// keyed (micro-batch), so a receiver waiting for one key never takes another's message.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, test } from "vitest"
import * as Comm from "../../src/comm/Communicator.js"
import * as Link from "../../src/dataflow/Link.js"
import * as TensorLayout from "../../src/dataflow/TensorLayout.js"
import * as Job from "../../src/runtime/Job.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const failureOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? (r.error as Error).message : r._tag === "Die" ? String(r.defect) : ""))) : "(succeeded)"

const spRows = TensorLayout.make([TensorLayout.dim("tokens", 8, [{ axis: "tp", size: 2 }]), TensorLayout.dim("hidden", 3)])
const fullRows = TensorLayout.make([TensorLayout.dim("tokens", 8), TensorLayout.dim("hidden", 3)])

/** Rank 0 sends `message` on `link`, rank 1 receives it. */
const sendOne = (link: Link.Link, message: Tensor.Tensor | TensorLayout.WithLayout) =>
  Effect.runPromise(Effect.exit(Job.run({ world: 2, timeoutMs: 300 }, (rank) => (rank === 0 ? Link.send(link, message, 5) : Effect.map(Link.recv(link, 5), Tensor.toArray)))))

describe("links", () => {
  test("a link keeps order and refuses tensors of another kind, on the sender", async () => {
    const link = Link.make("activations", 0, 1, { dtype: "float32", dims: 2 })
    const exit = await Effect.runPromise(
      Effect.exit(
        Job.run({ world: 2, timeoutMs: 1000 }, (rank) =>
          Effect.gen(function* () {
            if (rank === 0) {
              for (let i = 0; i < 3; i++) yield* Link.send(link, Tensor.full([1, 2], i))
              yield* Link.send(link, Tensor.zeros([2], { dtype: "float64" }))
              return []
            }
            const got = []
            for (let i = 0; i < 3; i++) got.push(Tensor.toArray(yield* Link.recv(link)))
            return got
          }),
        ),
      ),
    )
    const message = failureOf(exit)
    expect(message).toContain("rank 0")
    expect(message).toContain("link activations 0->1: sent a float64 tensor [2] but the link carries float32 tensors of 2 dims")
  })

  test("a tensor in the link's layout crosses; the wrong dims, layout or local shape fail at the sender naming the link", async () => {
    const link = Link.make("activation 0->1", 0, 1, { dtype: "float64", dims: 2, layout: spRows })
    const rows = Tensor.fromArray([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [4, 3], { dtype: "float64" })
    const ok = await sendOne(link, TensorLayout.attach(rows, spRows))
    expect(Exit.isSuccess(ok) ? ok.value[1] : undefined).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    expect(failureOf(await sendOne(link, Tensor.zeros([12], { dtype: "float64" })))).toContain(
      "link activation 0->1 0->1: sent a float64 tensor [12] but the link carries float64 tensors of 2 dims",
    )
    expect(failureOf(await sendOne(link, TensorLayout.attach(Tensor.zeros([8, 3], { dtype: "float64" }), fullRows)))).toContain(
      "link activation 0->1 0->1: sent a tensor laid out as [tokens 8, hidden 3] but the link carries [tokens 8/tp2, hidden 3] sequence-parallel",
    )
    expect(failureOf(await sendOne(link, Tensor.zeros([8, 3], { dtype: "float64" })))).toContain(
      "link activation 0->1 0->1: sent a tensor [8, 3], where [tokens 8/tp2, hidden 3] sequence-parallel has local shape [4, 3]",
    )
  })

  test("the receiver checks too, and waits for its own key", async () => {
    const link = Link.make("gradient 1->0", 0, 1, { dtype: "float64", dims: 2, layout: spRows })
    const exit = await Effect.runPromise(
      Effect.exit(
        Job.run({ world: 2, timeoutMs: 300 }, (rank) =>
          rank === 0
            ? Comm.send(1, Tensor.zeros([5, 3], { dtype: "float64" }), Link.tag(link, 2)) // bypasses the sender's check
            : Link.recv(link, 2),
        ),
      ),
    )
    expect(failureOf(exit)).toContain("link gradient 1->0 0->1: received a tensor [5, 3], where [tokens 8/tp2, hidden 3] sequence-parallel has local shape [4, 3]")
    const keys = await Job.runPromise({ world: 2, timeoutMs: 1000 }, (rank) =>
      Effect.gen(function* () {
        if (rank === 0) {
          for (const k of [0, 1, 2]) yield* Link.send(link, Tensor.full([4, 3], k, { dtype: "float64" }), k)
          return []
        }
        const got: Array<number> = []
        for (const k of [2, 0, 1]) got.push(Tensor.toArray(yield* Link.recv(link, k))[0] as number)
        return got
      }),
    )
    expect(keys[1]).toEqual([2, 0, 1])
  })

  test("a link's layout must have the link's dims", () => {
    expect(() => Link.make("bad", 0, 1, { dtype: "float64", dims: 3, layout: spRows })).toThrow(
      "link bad: layout [tokens 8/tp2, hidden 3] sequence-parallel has 2 dims but the link carries 3",
    )
  })
})
