// Typed layouts: the sequence-parallel pattern equals the single-rank math; wrong rewrites do
// not compile (@ts-expect-error, checked by the typecheck) and fail at run time when types are
// bypassed. (Links: Link.prop.ts; operators: Operator.prop.ts.)
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, test } from "vitest"
import * as Layout from "../../src/dataflow/Layout.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Job from "../../src/runtime/Job.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"

describe("layouts", () => {
  test("sequence parallel: allgather, column- and row-parallel matmuls, reduce-scatter equal one rank", async () => {
    const config = ParallelConfig.make({ world: 4, tp: 4 })
    const rows = 8
    const x = uniform([rows, 3], 1)
    const w1 = uniform([3, 8], 2) // column-parallel: each rank holds 2 of the 8 columns
    const w2 = uniform([8, 3], 3) // row-parallel: each rank holds 2 of the 8 rows
    const reference = matmul(matmul(x, w1), w2)
    const outputs = await Job.runPromise({ world: 4 }, (rank) =>
      Effect.gen(function* () {
        const tp = Layout.axisGroup(config, rank, ["tp"])
        const mine = Layout.make(Shape.rows(x, rank * 2, rank * 2 + 2), ["tp"], [])
        const full = yield* Layout.allGather(tp, mine) // Laid<never, never>
        const w1Local = Shape.transpose(Shape.rows(Shape.transpose(w1, 0, 1), rank * 2, rank * 2 + 2), 0, 1)
        const h = matmul(full.tensor, w1Local)
        const partial = Layout.make(matmul(h, Shape.rows(w2, rank * 2, rank * 2 + 2)), [], ["tp"])
        const out = yield* Layout.reduceScatter(tp, partial) // Laid<"tp", never>
        expect(out.sharded).toEqual(["tp"])
        expect(out.partial).toEqual([])
        return Tensor.toArray(out.tensor)
      }),
    )
    const expected = Tensor.toArray(reference)
    outputs.flat().forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 10))
  })

  test("wrong rewrites do not compile, and fail at run time when the types are bypassed", async () => {
    const config = ParallelConfig.make({ world: 2, tp: 2 })
    const exit = await Effect.runPromise(
      Effect.exit(
        Job.run({ world: 2 }, (rank) =>
          Effect.gen(function* () {
            const tp = Layout.axisGroup(config, rank, ["tp"])
            const replicated = Layout.replicated(Tensor.zeros([2, 2], { dtype: "float64" }))
            // Type-level guards (the typecheck of npm test fails if any of these compiled):
            // @ts-expect-error a replicated tensor has no rows sharded over tp to gather
            yield* Layout.allGather(tp, replicated)
            return undefined
          }),
        ),
      ),
    )
    expect(Exit.isFailure(exit)).toBe(true)
    // The rank failed with a LayoutError (wrapped in the job's RankFailed).
    const rankCause = Exit.isFailure(exit) ? exit.cause.reasons.flatMap((r) => (r._tag === "Fail" ? [(r.error as { cause: typeof exit.cause }).cause] : [])) : []
    expect(rankCause.some((c) => c.reasons.some((r) => r._tag === "Fail" && r.error instanceof Layout.LayoutError))).toBe(true)
    expect(String(Exit.isFailure(exit) ? exit.cause.reasons.map((r) => (r._tag === "Fail" ? (r.error as Error).message : "")) : "")).toContain(
      "allGather: needs rows sharded over [tp] but the tensor is sharded over [] and partial over []",
    )
    const typeOnly = (g: Layout.AxisGroup<"tp">, s: Layout.Laid<"tp">, p: Layout.Laid<never, "ep">) => {
      // @ts-expect-error no partial sums over tp to reduce
      void Layout.reduceScatter(g, s)
      // @ts-expect-error partial over ep, not tp
      void Layout.allReduce(g, p)
      void Layout.allGather(g, s)
    }
    expect(typeof typeOnly).toBe("function")
  })
})
