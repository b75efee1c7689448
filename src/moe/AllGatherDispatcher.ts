/**
 * AllGatherDispatcher: every member of the etp-ep group sees every token of the group, keeps
 * the rows routed to its local experts, and a reduce-scatter brings each token's expert
 * outputs (and the etp partial sums) back to the rank that owns it (semantics.md 2.4.1).
 *
 * Shape legend: T tokens here, A tokens of the whole etp-ep group, E experts, L local experts.
 *   1. allgather-v over etp-ep: tokens [A, H], probs [A, E], the routing map
 *   2. keep the columns of the local experts: map [A, L], probs [A, L]; permute locally
 *   3. experts (grouped, probs before fc2), unpermute into [A, H]
 *   4. reduce-scatter-v over etp-ep: each member gets its own T rows, summed over the members
 *      that hold its tokens' experts and over the etp partials
 * Simpler than all-to-all and moves more bytes (every token to every member). The gather and
 * the reduce-scatter are typed channels over the etp-ep shards (LaidCollective): the tokens
 * enter as this rank's own rows (RoutedLayout.enter), are gathered, permuted to the local
 * experts and back, and leave complete, in sequence order, in the layout they came in.
 */
import * as Effect from "effect/Effect"
import * as Comm from "../comm/Communicator.js"
import * as LaidCollective from "../dataflow/LaidCollective.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import { gatherRows } from "../tensor/ops/Gather.js"
import { transpose } from "../tensor/ops/Shape.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Dispatcher from "./Dispatcher.js"
import * as Experts from "./Experts.js"
import * as Permute from "./Permute.js"
import * as RoutedLayout from "./RoutedLayout.js"
import * as RoutingMap from "./RoutingMap.js"

/**
 * Dispatch, experts and combine; returns [T, H] (in the tokens' layout) and what the dispatch
 * learned.
 * @category combinators
 */
export const run = (input: Dispatcher.DispatchInput) =>
  Effect.gen(function* () {
    const { tokens, probs, map, numExperts, groups } = input
    const epSize = groups.ep.ranks.length
    const local = Dispatcher.localExperts(numExperts, epSize)
    const comm = yield* Comm.Communicator
    const myEp = groups.ep.ranks.indexOf(comm.rank)
    const t = tokens.shape[0] as number

    const entered = input.layout ?? RoutedLayout.plain(tokens)
    const batch = RoutedLayout.enter(entered, groups)
    const over = RoutedLayout.expertShards(groups)
    const allTokens = yield* LaidCollective.allGatherV(over, groups.etpEp, TensorLayout.attach(tokens, batch))
    const allProbs = (yield* LaidCollective.allGatherV(over, groups.etpEp, RoutedLayout.columns({ tensor: tokens, layout: batch }, probs, "experts"))).tensor
    const mask = Tensor.fromArray(map.mask, [t, numExperts], { dtype: "float64" })
    const allMask = yield* Comm.allGatherV(groups.etpEp, mask)
    const a = allTokens.tensor.shape[0] as number

    // The columns of this rank's experts: a row gather on the transposed [E, A] matrices.
    const columns = Int32Array.from({ length: local }, (_, l) => myEp * local + l)
    const localProbs = transpose(gatherRows(transpose(allProbs, 0, 1), columns), 0, 1)
    const localMask = new Uint8Array(a * local)
    for (let i = 0; i < a; i++) for (let l = 0; l < local; l++) localMask[i * local + l] = (allMask.tensor.data[i * numExperts + myEp * local + l] as number) !== 0 ? 1 : 0
    const localMap = RoutingMap.make(a, local, localMask)

    const p = Permute.permute(allTokens.tensor, localMap, localProbs)
    const atCombine = input.probsAt === "combine"
    const rowProbs = p.permutedProbs as Tensor.Tensor
    const y = (input.compute ?? ((r, pr, n) => Experts.forward(r, pr, n, input.experts, input.glu)))(p.permuted, atCombine ? undefined : rowProbs, p.tokensPerExpert)
    // The routed rows' outputs are partial sums over etp (the experts' hidden units) and, once
    // back on the gathered tokens, over ep (this member's experts only).
    const partial = over.reduce(TensorLayout.partialOver, RoutedLayout.permuted(allTokens.layout, p.sortedIndices.length))
    const combined = yield* RoutedLayout.unpermute(TensorLayout.attach(y, partial), Permute.unpermute(y, p.sortedIndices, a, atCombine ? rowProbs : undefined), a)
    // The permuted rows (this member's own, gathered by the permute) and the experts' output, to
    // the recycler off the tape.
    Dispatcher.recycleExpertRows(input, p.permuted, y)
    const own = yield* LaidCollective.reduceScatterV(over, groups.etpEp, combined, allTokens.splits)
    const output = yield* RoutedLayout.leave(own, entered)
    return { output: output.tensor, layout: output.layout, report: { rowsPerLocalExpert: p.tokensPerExpert, plan: p.plan } satisfies Dispatcher.DispatchReport }
  })
