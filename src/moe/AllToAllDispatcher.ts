/**
 * AllToAllDispatcher: permute -> counts -> all-to-all over EP -> allgather-v over ETP -> sort
 * by local expert -> experts -> the same steps backwards (semantics.md 2.4.2).
 *
 * Shape legend: T tokens, H hidden, E experts, L local experts, N routed rows of this rank,
 * R rows received over EP, Q rows after the ETP gather.
 *   1. permute: [T, H] -> [N, H + 1] expert-major (the probs ride along as one more column)
 *   2. counts: every etp-ep member's tokens-per-expert [E] (allGather of [1, E])
 *   3. all-to-all over ep: ep member j gets the rows of its experts jL..jL+L-1
 *   4. allgather-v over etp: every etp member holds every row its expert shard must see
 *   5. sort chunks (etp member, ep source, local expert) -> (local expert, etp member, ep source),
 *      splitting the prob column off in the same pass
 *   6. experts (grouped, probs before fc2) -> partial sums over etp
 *   7. unsort, reduce-scatter-v over etp (sums the partials), all-to-all back, unpermute
 * Every step is an autograd op, so gradients reach tokens, probs and expert weights. The
 * exchanges are typed channels (LaidCollective) and the local steps rewrite the layout too
 * (RoutedLayout): the rows go token-permuted at 1 and back to sequence order at 7, and the
 * output is in the layout the tokens came in, checked.
 * A rank with no tokens, an expert with no rows: empty blocks, same code path. With one ep and
 * one etp member (nothing to exchange) steps 2-5 and 7's exchanges are skipped and the probs
 * never become a column: permute, experts, unpermute, the same values.
 */
import * as Effect from "effect/Effect"
import * as Comm from "../comm/Communicator.js"
import * as LaidCollective from "../dataflow/LaidCollective.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import * as Tensor from "../tensor/Tensor.js"
import * as DispatchPlan from "./DispatchPlan.js"
import * as Dispatcher from "./Dispatcher.js"
import * as Experts from "./Experts.js"
import * as Permute from "./Permute.js"
import * as RoutedLayout from "./RoutedLayout.js"

/**
 * Dispatch, experts and combine; returns [T, H] (in the tokens' layout) and what the dispatch
 * learned.
 * @category combinators
 */
export const run = (input: Dispatcher.DispatchInput) =>
  Effect.gen(function* () {
    const { tokens, probs, map, numExperts, groups } = input
    const epSize = groups.ep.ranks.length
    const etpSize = groups.etp.ranks.length
    const local = Dispatcher.localExperts(numExperts, epSize)
    const comm = yield* Comm.Communicator
    const myEp = groups.ep.ranks.indexOf(comm.rank)
    const h = tokens.shape[1] as number
    const t = tokens.shape[0] as number
    const entered = input.layout ?? RoutedLayout.plain(tokens)
    const batch = RoutedLayout.enter(entered, groups)
    const compute = input.compute ?? ((r: Tensor.Tensor, pr: Tensor.Tensor, n: ReadonlyArray<number>) => Experts.forward(r, pr, n, input.experts))

    // One ep and one etp member: nothing is exchanged, and the permute's expert-major rows are
    // already in the experts' order, so the probs stay a tensor of their own (a prob column
    // would cost a pass to join and one to split off again; the same values either way).
    if (epSize === 1 && etpSize === 1) {
      const alone = Permute.permute(tokens, map, probs)
      const routed = TensorLayout.attach(alone.permuted, RoutedLayout.permuted(batch, alone.sortedIndices.length))
      const y = compute(alone.permuted, alone.permutedProbs as Tensor.Tensor, alone.tokensPerExpert)
      const expertOut = RoutedLayout.columns(routed, y, "hidden")
      const combined = yield* RoutedLayout.unpermute(expertOut, Permute.unpermute(y, alone.sortedIndices, t), t)
      const output = yield* RoutedLayout.leave(combined, entered)
      return { output: output.tensor, layout: output.layout, report: { rowsPerLocalExpert: alone.tokensPerExpert, plan: alone.plan } satisfies Dispatcher.DispatchReport }
    }

    // 1. Local permutation; probs travel as the last column so one exchange moves both (the
    // rows and their column are written in one pass).
    const p = Permute.permuteWithProbColumn(tokens, map, probs)
    const n = p.sortedIndices.length
    const rows = TensorLayout.attach(p.rows, TensorLayout.withLastDim(RoutedLayout.permuted(batch, n), TensorLayout.dim("hidden and prob", h + 1)))

    // 2. Counts first: tokens per expert of every etp-ep member (group-local etp + ETP*ep).
    const mine = Tensor.fromArray(p.tokensPerExpert, [1, numExperts], { dtype: "float64" })
    const all = yield* Comm.allGather(groups.etpEp, mine)
    const count = (etp: number, ep: number, expert: number) => all.data[(etp + etpSize * ep) * numExperts + expert] as number

    // 3. All-to-all over ep: to ep member j the rows of its experts.
    const sendSplits = DispatchPlan.splitsFor(p.tokensPerExpert, epSize)
    // (One ep member exchanges with itself: the rows stay, in the layout the exchange would give.)
    const exchanged = epSize > 1 ? yield* LaidCollective.allToAllV("ep", groups.ep, rows, sendSplits) : { ...rows, recvSplits: [n] }

    // 4. Allgather-v over etp: the rows every member of my etp group received.
    const gathered = etpSize > 1 ? yield* LaidCollective.allGatherV("etp", groups.etp, exchanged) : exchanged

    // 5. Chunks arrive as (etp member m, ep source s, local expert l); sort to (l, m, s).
    const chunkSizes: Array<number> = []
    const key: Array<[number, number, number]> = []
    for (let m = 0; m < etpSize; m++)
      for (let s = 0; s < epSize; s++)
        for (let l = 0; l < local; l++) {
          chunkSizes.push(count(m, s, myEp * local + l))
          key.push([l, m, s])
        }
    const order = key
      .map((_, i) => i)
      .sort((a, b) => {
        const [la, ma, sa] = key[a] as [number, number, number]
        const [lb, mb, sb] = key[b] as [number, number, number]
        return la - lb || ma - mb || sa - sb
      })
    const rowsPerLocalExpert = Array.from({ length: local }, (_, l) =>
      order.filter((c) => (key[c] as [number, number, number])[0] === l).reduce((acc, c) => acc + (chunkSizes[c] as number), 0),
    )

    // 6. Experts on expert-major rows; the prob column is split off (in the sort's pass) and
    // applied before fc2.
    const sorted = Permute.sortChunksAndSplit(gathered.tensor, chunkSizes, order)
    const y = compute(sorted.rows, sorted.probs, rowsPerLocalExpert)

    // 7. Back: unsort, sum the etp partials onto each member's own rows, exchange back, unpermute.
    const inverse = new Array<number>(order.length)
    order.forEach((c, i) => (inverse[c] = i))
    const sortedSizes = order.map((c) => chunkSizes[c] as number)
    // The experts' hidden units are split over etp: their outputs are partial sums over it.
    const expertOut = RoutedLayout.columns(gathered, y, "hidden")
    // Chunks already in place (one ep and etp member) cost no pass forward.
    const unsorted = TensorLayout.attach(Permute.sortChunksByIndex(y, sortedSizes, inverse).output, TensorLayout.partialOver(expertOut.layout, { axis: "etp", size: etpSize }))
    const perMember = Array.from({ length: etpSize }, (_, m) => {
      let rowsOfM = 0
      for (let s = 0; s < epSize; s++) for (let l = 0; l < local; l++) rowsOfM += count(m, s, myEp * local + l)
      return rowsOfM
    })
    const own = etpSize > 1 ? yield* LaidCollective.reduceScatterV("etp", groups.etp, unsorted, perMember) : unsorted
    const back = epSize > 1 ? yield* LaidCollective.allToAllV("ep", groups.ep, own, exchanged.recvSplits) : own
    const combined = yield* RoutedLayout.unpermute(back, Permute.unpermute(back.tensor, p.sortedIndices, t), t)
    const output = yield* RoutedLayout.leave(combined, entered)
    return { output: output.tensor, layout: output.layout, report: { rowsPerLocalExpert, plan: p.plan } satisfies Dispatcher.DispatchReport }
  })
