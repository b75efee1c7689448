/**
 * Embedding: the first operator of the model, token ids -> hidden rows.
 *
 * The table is split by vocabulary over tp; each member looks up the ids it owns (zeros for
 * the rest), so the rows are partial sums over tp until a collective completes them:
 *
 *   [tokens T/cp] --lookup--> [tokens T/cp, hidden H] partial over tp
 *     --reduce-scatter over tp--> [tokens T/cp/tp, hidden H] sequence-parallel   (SP on)
 *     --allreduce over tp-->      [tokens T/cp, hidden H]                         (SP off)
 *
 * The operator derives its output layout along that path from the settings it ran with, and
 * the declared output layout (the model's hidden layout) is checked against it.
 */
import * as Effect from "effect/Effect"
import * as VocabParallel from "../attention/VocabParallel.js"
import * as Operator from "../dataflow/Operator.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import * as Tensor from "../tensor/Tensor.js"
import * as ModelContext from "./ModelContext.js"

/** The operator's name in errors and traces. */
const name = "embedding"

/**
 * The embedding operator of a rank; `output` is the layout the model declares for it.
 * @category constructors
 */
export const make = (c: ModelContext.ModelContext, output: TensorLayout.TensorLayout) =>
  Operator.producing(name, output, (tokens: ModelContext.Tokens) =>
    Effect.gen(function* () {
      const input = ModelContext.tokensLayout(c)
      const rows = TensorLayout.localShape(input)[0]
      if (tokens.ids.length !== rows) {
        return yield* Effect.fail(new Operator.LayoutMismatch({ operator: name, edge: "input", declared: TensorLayout.format(input), actual: `${tokens.ids.length} token ids` }))
      }
      const tp = ModelContext.tpShard(c)
      const looked = TensorLayout.partialOver(TensorLayout.withDim(input, "hidden", c.sizes.hidden), tp)
      const layout = c.sequenceParallel ? TensorLayout.scatter(looked, tp) : TensorLayout.reduce(looked, tp.axis)
      const x = yield* VocabParallel.embedding(c.param("embedding"), tokens.ids, c.sizes.vocab, c.groups.tp, c.sequenceParallel)
      return { tensor: x, layout, aux: Tensor.zeros([], { dtype: x.dtype }), expertRows: [] } satisfies ModelContext.Activations
    }),
  )
