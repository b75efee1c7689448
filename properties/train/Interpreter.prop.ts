// The pipeline interpreter: every checked schedule (1F1B, interleaved, forward-only) runs to the
// end over typed links and moves each micro-batch's activation and gradient through every stage
// in order (a toy program whose values record the path); malformed action lists fail with an
// InterpretError naming the action; a list whose sends name the wrong rank is refused before
// any message moves.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as TensorLayout from "../../src/dataflow/TensorLayout.js"
import * as A from "../../src/pipeline/Action.js"
import * as Partition from "../../src/pipeline/Partition.js"
import * as Schedule from "../../src/pipeline/Schedule.js"
import * as Job from "../../src/runtime/Job.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as Interpreter from "../../src/train/Interpreter.js"
import * as PipelineLinks from "../../src/train/PipelineLinks.js"
import { interleavedConfig, plainConfig, type Config } from "../pipeline/arbitraries.js"

const layout = TensorLayout.make([TensorLayout.dim("tokens", 1), TensorLayout.dim("hidden", 1)])
const scalar = (v: number) => Tensor.fromArray([v], [1, 1], { dtype: "float64" })

/** Forward: x -> 2x + stage + 1 (x = micro-batch on stage 0); backward: g -> g + stage (g = -micro-batch on the last). */
const toy = (
  stages: Partition.Stages,
  pp: number,
  actions: ReadonlyArray<A.Action>,
  forwardOnly: boolean,
  seen: { forward: Map<number, number>; backward: Map<number, number> },
): Interpreter.Program<never, never> => {
  const stageOf = (chunk: number) => Partition.globalStage(stages, pp, chunk)
  const last = Partition.stageCount(stages) - 1
  return {
    pp,
    links: PipelineLinks.make({ stages, pp, ppRanks: Array.from({ length: stages.pp }, (_, i) => i), actions, dtype: "float64", layout }),
    isFirst: (chunk) => stageOf(chunk) === 0,
    isLast: (chunk) => stageOf(chunk) === last,
    forwardOnly,
    forward: (mb, chunk, input) =>
      Effect.sync(() => {
        const stage = stageOf(chunk)
        const x = input === undefined ? mb : Tensor.item(input)
        const y = 2 * x + stage + 1
        if (stage === last) seen.forward.set(mb, y)
        return {
          output: stage === last ? undefined : TensorLayout.attach(scalar(y), layout),
          backward: (dy) =>
            Effect.sync(() => {
              const g = (dy === undefined ? -mb : Tensor.item(dy)) + stage
              if (stage === 0) seen.backward.set(mb, g)
              return stage === 0 ? undefined : scalar(g)
            }),
        }
      }),
  }
}

const runSchedule = (c: Config) => {
  const schedule = Schedule.make({ pp: c.pp, vpp: c.vpp, microBatches: c.microBatches, microbatchGroupSize: c.microbatchGroupSize, forwardOnly: c.forwardOnly })
  const stages = { pp: schedule.pp, vpp: schedule.vpp }
  return Job.runPromise({ world: c.pp, timeoutMs: 5000 }, (rank) =>
    Effect.gen(function* () {
      const seen = { forward: new Map<number, number>(), backward: new Map<number, number>() }
      const actions = schedule.ranks[rank] as ReadonlyArray<A.Action>
      yield* Interpreter.run(actions, toy(stages, rank, actions, c.forwardOnly, seen))
      return seen
    }),
  ).then((perRank) => ({ perRank, stages: Partition.stageCount(stages) }))
}

describe("the pipeline interpreter", () => {
  test("runs every checked schedule to the end and passes each micro-batch through every stage in order", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(plainConfig(8), interleavedConfig(2)), async (c) => {
        const { perRank, stages } = await runSchedule(c)
        for (let mb = 0; mb < c.microBatches; mb++) {
          let y = mb
          for (let s = 0; s < stages; s++) y = 2 * y + s + 1
          let g = -mb
          for (let s = stages - 1; s >= 0; s--) g += s
          // Stage 0 lives on pp rank 0; the last stage on pp rank pp-1.
          expect(perRank[c.pp - 1]?.forward.get(mb)).toBe(y)
          expect(perRank[0]?.backward.get(mb)).toBe(c.forwardOnly ? undefined : g)
        }
      }),
      { numRuns: 40 },
    )
  }, 120_000)

  const failure = async (pp: number, lists: ReadonlyArray<ReadonlyArray<A.Action>>) => {
    const stages = { pp, vpp: 1 }
    const exit = await Effect.runPromise(
      Effect.exit(
        Job.run({ world: pp, timeoutMs: 500 }, (rank) =>
          Interpreter.run(lists[rank] as ReadonlyArray<A.Action>, toy(stages, rank, lists[rank] as ReadonlyArray<A.Action>, false, { forward: new Map(), backward: new Map() })),
        ),
      ),
    )
    expect(Exit.isFailure(exit)).toBe(true)
    return Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? (r.error as Error).message : r._tag === "Die" ? String(r.defect) : ""))) : ""
  }

  test("a backward before its forward fails naming the action and what it found", async () => {
    const message = await failure(1, [[A.backward(0, 0), A.forward(0, 0)]])
    expect(message).toContain("pipeline action B0c0 on pp rank 0: needs micro-batch 0 on chunk 0 forwarded (the last stage needs no gradient), but it has nothing in flight")
  })

  test("a forward run twice, a receive before the send it needs, a list that ends with work in flight", async () => {
    expect(await failure(1, [[A.forward(0, 0), A.forward(0, 0)]])).toContain(
      "pipeline action F0c0 on pp rank 0: needs micro-batch 0 on chunk 0 with nothing in flight, but it has forwarded, not yet sent",
    )
    expect(await failure(2, [[A.forward(0, 0), A.recvBackward(0, 0, 1)], [A.recvForward(0, 0, 0)]])).toContain(
      "pipeline action rB0c0<1 on pp rank 0: needs micro-batch 0 on chunk 0 forwarded and sent, but it has forwarded, not yet sent",
    )
    expect(await failure(1, [[A.forward(0, 0), A.forward(1, 0), A.backward(0, 0)]])).toContain(
      "pipeline action B0c0 (the last) on pp rank 0: the list ends with work in flight: micro-batch 1 on chunk 0 (forwarded, not yet sent)",
    )
    expect(
      await failure(2, [
        [A.forward(0, 0), A.sendForward(0, 0, 1), A.backward(0, 0)],
        [A.recvForward(0, 0, 0), A.forward(0, 0), A.backward(0, 0), A.sendBackward(0, 0, 0)],
      ]),
    ).toContain("pipeline action B0c0 on pp rank 0: needs micro-batch 0 on chunk 0 with its output gradient received, but it has forwarded and sent")
  })

  test("an activation in the wrong layout fails at the sender, naming the link", async () => {
    const stages = { pp: 2, vpp: 1 }
    const lists = Schedule.make({ pp: 2, microBatches: 2 }).ranks
    const exit = await Effect.runPromise(
      Effect.exit(
        Job.run({ world: 2, timeoutMs: 500 }, (rank) => {
          const actions = lists[rank] as ReadonlyArray<A.Action>
          const program = toy(stages, rank, actions, false, { forward: new Map(), backward: new Map() })
          // Stage 0 hands on two rows where the link carries one.
          const wrong: Interpreter.Program<never, never> = {
            ...program,
            forward: (mb, chunk, input) =>
              Effect.map(program.forward(mb, chunk, input), (f) => ({ ...f, output: f.output && TensorLayout.attach(Tensor.zeros([2, 1], { dtype: "float64" }), layout) })),
          }
          return Interpreter.run(actions, rank === 0 ? wrong : program)
        }),
      ),
    )
    expect(Exit.isFailure(exit)).toBe(true)
    const message = Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? (r.error as Error).message : ""))) : ""
    expect(message).toContain("rank 0 failed")
    expect(message).toContain("link activation 0->1 0->1: sent a tensor [2, 1], where [tokens 1, hidden 1] has local shape [1, 1]")
  })

  test("a send that names a rank not holding the next stage is refused before anything runs", () => {
    expect(() =>
      PipelineLinks.make({
        stages: { pp: 4, vpp: 1 },
        pp: 1,
        ppRanks: [0, 1, 2, 3],
        actions: [A.recvForward(0, 0, 0), A.forward(0, 0), A.sendForward(0, 0, 3)],
        dtype: "float64",
        layout,
      }),
    ).toThrow("action sF0c0>3 of pp rank 1: stage 2 is on pp rank 2, not 3")
    const links = PipelineLinks.make({
      stages: { pp: 2, vpp: 2 },
      pp: 1,
      ppRanks: [4, 6],
      actions: Schedule.make({ pp: 2, vpp: 2, microBatches: 4 }).ranks[1] as ReadonlyArray<A.Action>,
      dtype: "float32",
      layout,
    })
    expect(links.all.map((l) => `${l.name} ${l.from}->${l.to}`).sort()).toEqual([
      "activation 0->1 4->6",
      "activation 1->2 6->4",
      "activation 2->3 4->6",
      "gradient 1->0 6->4",
      "gradient 2->1 4->6",
      "gradient 3->2 6->4",
    ])
  })
})
