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
 * The operator's output layout is the one the typed channel over tp gave the lookup's rows
 * (VocabParallel.embeddingLaid), and the declared output layout (the model's hidden layout) is
 * checked against it.
 *
 * With tied embeddings (the default) the same table is the output layer too (Head.ts): the
 * last stage uses it, or its copy of it when pp > 1 (Params, RankParams).
 */
import * as Effect from "effect/Effect"
import * as VocabParallel from "../attention/VocabParallel.js"
import * as Operator from "../dataflow/Operator.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import * as Tensor from "../tensor/Tensor.js"
import type * as ModelContext from "./ModelContext.js"
import * as ModelLayouts from "./ModelLayouts.js"

/** The operator's name in errors and traces. */
const name = "embedding"

/**
 * The embedding operator of a rank; `output` is the layout the model declares for it.
 * @category constructors
 */
export const make = (c: ModelContext.ModelContext, output: TensorLayout.TensorLayout) =>
  Operator.producing(name, output, (tokens: ModelContext.Tokens) => Effect.gen(() => embeddingSteps(c, tokens)))

/** The embedding's steps on one input, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* embeddingSteps(c: ModelContext.ModelContext, tokens: ModelContext.Tokens) {
  const input = ModelLayouts.tokensLayout(c)
  const rows = TensorLayout.localShape(input)[0]
  if (tokens.ids.length !== rows) {
    return yield* Effect.fail(new Operator.LayoutMismatch({ operator: name, edge: "input", declared: TensorLayout.format(input), actual: `${tokens.ids.length} token ids` }))
  }
  const x = yield* VocabParallel.embeddingLaid(c.param("embedding"), tokens.ids, input, c.sizes.vocab, c.groups.tp, c.sequenceParallel)
  return { tensor: x.tensor, layout: x.layout, aux: Tensor.zeros([], { dtype: x.tensor.dtype, device: x.tensor.device }), expertRows: [] } satisfies ModelContext.Activations
}
