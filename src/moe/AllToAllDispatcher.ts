/**
 * AllToAllDispatcher: permute -> counts -> all-to-all over EP -> allgather-v over ETP -> sort
 * by local expert -> experts -> the same steps backwards (semantics.md 2.4.2).
 *
 * Shape legend: T tokens, H hidden, E experts, L local experts, N routed rows of this rank,
 * R rows received over EP, Q rows after the ETP gather.
 *   1. permute: [T, H] -> [N, H] expert-major, and each row's prob [N] (with more than one ep
 *      member the rows are not moved here: step 3's exchange gathers them as it copies)
 *   2. counts: every etp-ep member's tokens-per-expert [E] (allGather of [1, E])
 *   3. all-to-all over ep in L chunks (comm/Chunked.ts): ep member j gets the rows of its
 *      experts jL..jL+L-1, placed (local expert, ep source) as they are copied; the probs [N, 1]
 *      the same way (a second, small exchange, issued with the first)
 *   4. allgather-v over etp: every etp member holds every row its expert shard must see
 *   5. sort chunks (etp member, local expert, ep source) -> (local expert, etp member, ep source);
 *      with one etp member they are in that order already and nothing moves
 *   6. experts (grouped, probs before fc2 unless `probsAt` is "combine") -> partial sums over etp
 *   7. unsort, reduce-scatter-v over etp (sums the partials), all-to-all back in L chunks (each
 *      token's rows land expert-major again), unpermute; with more than one ep member the
 *      exchange back sums each token's rows as they arrive (comm/ReceiveCombine.ts); with
 *      `probsAt` "combine" each row times its prob as it is summed (unpermute with probs)
 * Every step is an autograd op, so gradients reach tokens, probs and expert weights. The
 * exchanges are typed channels (LaidCollective) and the local steps rewrite the layout too
 * (RoutedLayout): the rows go token-permuted at 1 and back to sequence order at 7, and the
 * output is in the layout the tokens came in, checked.
 * A rank with no tokens, an expert with no rows: empty blocks, same code path; a group of one
 * member skips its exchange. With more than one ep member each row passes through two sweeps
 * besides the experts: the exchange there (fused with the permute) and the exchange back (fused
 * with the unpermute), plus the etp gather and sorts with more than one etp member; before the
 * chunked exchange the probs rode along as a column and the permute, the chunk sort, its split,
 * the unsort and the unpermute were a pass each over all the rows.
 */
import * as Effect from "effect/Effect"
import * as Chunked from "../comm/Chunked.js"
import * as Comm from "../comm/Communicator.js"
import * as LaidCollective from "../dataflow/LaidCollective.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import { reshape } from "../tensor/ops/Shape.js"
import { hostValues } from "../tensor/ops/Transfer.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Dispatcher from "./Dispatcher.js"
import * as Experts from "./Experts.js"
import * as Permute from "./Permute.js"
import * as RoutedLayout from "./RoutedLayout.js"

/**
 * Dispatch, experts and combine; returns [T, H] (in the tokens' layout) and what the dispatch
 * learned.
 * @category combinators
 */
export const run = (input: Dispatcher.DispatchInput) => Effect.gen(() => runSteps(input))

/** run's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* runSteps(input: Dispatcher.DispatchInput) {
  const { tokens, probs, map, numExperts, groups } = input
  const epSize = groups.ep.ranks.length
  const etpSize = groups.etp.ranks.length
  const local = Dispatcher.localExperts(numExperts, epSize)
  const comm = yield* Comm.Communicator
  const myEp = groups.ep.ranks.indexOf(comm.rank)
  const myEtp = groups.etp.ranks.indexOf(comm.rank)
  const t = tokens.shape[0] as number
  const entered = input.layout ?? RoutedLayout.plain(tokens)
  const batch = RoutedLayout.enter(entered, groups)
  const compute = input.compute ?? ((r: Tensor.Tensor, pr: Tensor.Tensor | undefined, n: ReadonlyArray<number>) => Experts.forward(r, pr, n, input.experts, input.glu))
  const atCombine = input.probsAt === "combine"

  // 1. The rows expert-major, and their probs as a column of their own. With more than one ep
  // member the exchange gathers the token rows as it copies them (a permute fused with it:
  // the rows it sends are tokens[sortedIndices]); only the order and the probs are made here.
  const p = epSize > 1 ? Permute.route(tokens, map, probs) : Permute.permute(tokens, map, probs)
  const n = p.sortedIndices.length
  const permuted = RoutedLayout.permuted(batch, n)
  const rows = "permuted" in p ? TensorLayout.attach(p.permuted, permuted) : TensorLayout.attach(tokens, batch)
  const probColumn = TensorLayout.attach(reshape(p.permutedProbs as Tensor.Tensor, [n, 1]), TensorLayout.withLastDim(permuted, TensorLayout.dim("prob", 1)))

  // 2. Counts first: tokens per expert of every etp-ep member (group-local etp + ETP*ep).
  const alone = epSize === 1 && etpSize === 1
  const all = alone ? undefined : yield* Comm.allGather(groups.etpEp, Tensor.fromArray(p.tokensPerExpert, [1, numExperts], { dtype: "float64" }))
  const count = (etp: number, ep: number, expert: number) =>
    all === undefined ? (p.tokensPerExpert[expert] as number) : (all.data[(etp + etpSize * ep) * numExperts + expert] as number)

  // 3. All-to-all over ep in chunks: to ep member j the rows of expert jL + l as chunk l
  // (expert-major is member-major), from ep member s chunk l of count(me, s, myEp L + l) rows.
  const sendSplits = p.tokensPerExpert
  const recvSplits = Array.from({ length: epSize * local }, (_, i) => count(myEtp, Math.floor(i / local), myEp * local + (i % local)))
  const dispatch: Chunked.Exchange = { chunks: local, chunkOrder: "received", sendSplits, recvSplits }
  const sent = [p.sortedIndices, undefined]
  const [exchanged, exchangedProbs] = (epSize > 1 ? yield* LaidCollective.allToAllVChunks("ep", groups.ep, [rows, probColumn], dispatch, sent) : [rows, probColumn]) as [
    TensorLayout.WithLayout,
    TensorLayout.WithLayout,
  ]

  // 4. Allgather-v over etp: the rows every member of my etp group received.
  const gathered = etpSize > 1 ? yield* LaidCollective.allGatherV("etp", groups.etp, exchanged) : exchanged
  const gatheredProbs = etpSize > 1 && !atCombine ? yield* LaidCollective.allGatherV("etp", groups.etp, exchangedProbs) : exchangedProbs

  // 5. Chunks arrive as (etp member m, local expert l, ep source s); sort to (l, m, s).
  const chunkSizes: Array<number> = []
  const key: Array<[number, number, number]> = []
  for (let m = 0; m < etpSize; m++)
    for (let l = 0; l < local; l++)
      for (let s = 0; s < epSize; s++) {
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
  const rowsPerLocalExpert = Array.from({ length: local }, (_, l) => {
    let sum = 0
    for (let m = 0; m < etpSize; m++) for (let s = 0; s < epSize; s++) sum += count(m, s, myEp * local + l)
    return sum
  })

  // 6. Experts on expert-major rows, the probs applied before fc2 (or at 7, `probsAt`).
  const q = gathered.tensor.shape[0] as number
  const flatProbs = atCombine ? undefined : reshape(gatheredProbs.tensor, [q])
  const sorted = etpSize > 1 ? Permute.sortChunksByIndex(gathered.tensor, chunkSizes, order, flatProbs) : { output: gathered.tensor, probs: flatProbs }
  const y = compute(sorted.output, sorted.probs, rowsPerLocalExpert)

  // 7. Back: unsort, sum the etp partials onto each member's own rows, exchange back, unpermute.
  // The experts' hidden units are split over etp: their outputs are partial sums over it.
  const expertOut = RoutedLayout.columns(gathered, y, "hidden")
  let unsortedRows = y
  if (etpSize > 1) {
    const inverse = new Array<number>(order.length)
    order.forEach((c, i) => (inverse[c] = i))
    unsortedRows = Permute.sortChunksByIndex(
      y,
      order.map((c) => chunkSizes[c] as number),
      inverse,
    ).output
  }
  const unsorted = TensorLayout.attach(unsortedRows, TensorLayout.partialOver(expertOut.layout, { axis: "etp", size: etpSize }))
  const perMember = Array.from({ length: etpSize }, (_, m) => {
    let rowsOfM = 0
    for (let s = 0; s < epSize; s++) for (let l = 0; l < local; l++) rowsOfM += count(m, s, myEp * local + l)
    return rowsOfM
  })
  const own = etpSize > 1 ? yield* LaidCollective.reduceScatterV("etp", groups.etp, unsorted, perMember) : unsorted
  // Own rows are (l, s): chunk-major on the way back, landing expert-major at each source.
  // With more than one ep member the exchange back sums each token's rows as they arrive
  // (the unpermute fused with it: no pass over the returned rows).
  // With `probsAt` "combine" each row is weighted by its prob there: the receiver's copy of
  // the probs weights the sum, the sender's (the same values) takes their gradient.
  const rowProbs = p.permutedProbs as Tensor.Tensor
  let combined: TensorLayout.WithLayout
  if (epSize > 1) {
    // The receiver's copy of the probs weights the sum on the host: brought down without blocking.
    const combine = { index: p.sortedIndices, tokens: t, ...(atCombine ? { weights: yield* hostValues(rowProbs) } : {}) }
    const weights = atCombine ? reshape(exchangedProbs.tensor, [own.tensor.shape[0] as number]) : undefined
    const back = yield* LaidCollective.allToAllVCombine("ep", groups.ep, own, Chunked.reverse(dispatch), combine, weights)
    combined = yield* RoutedLayout.unpermute(TensorLayout.attach(back.combined, back.received), back.combined, t)
  } else combined = yield* RoutedLayout.unpermute(own, Permute.unpermute(own.tensor, p.sortedIndices, t, atCombine ? rowProbs : undefined), t)
  // The rows the experts ran on (this member's received rows, or its permuted ones with one
  // ep member) and their output, to the recycler off the tape. With etp members the rows are
  // an allgather's result, which a zero-copy transport shares: left to the collector.
  if (etpSize === 1) Dispatcher.recycleExpertRows(input, exchanged.tensor, y)
  const output = yield* RoutedLayout.leave(combined, entered)
  return { output: output.tensor, layout: output.layout, report: { rowsPerLocalExpert, plan: p.plan } satisfies Dispatcher.DispatchReport }
}
