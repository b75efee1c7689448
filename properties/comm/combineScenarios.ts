// Rank programs of the exchange whose receiver sums its rows onto tokens (comm/ReceiveCombine.ts),
// re-exported by scenarios.ts so that every backend's runner finds them.
import * as Effect from "effect/Effect"
import * as Delivered from "../../src/comm/Delivered.js"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as Device from "../../src/tensor/Device.js"
import * as DType from "../../src/tensor/DType.js"
import { simulated } from "../../src/tensor/device/SimulatedRuntime.js"
import { to } from "../../src/tensor/ops/Transfer.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import type * as Scenarios from "./scenarios.js"
import { chunkRows, groupOf, valuesOf } from "./scenarios.js"

/** The token received row r of member `me` is summed onto (any rank computes anyone's). */
export const combineToken = (r: number, me: number, tokens: number): number => (r * 5 + me * 3) % tokens

/** The weight received row r of member `me` is multiplied by as it is summed (exact in float32). */
export const combineWeight = (r: number, me: number): number => (((r * 3 + me) % 7) - 3) / 8

/**
 * The same chunked allToAllV three times, from rows of `dtype`: once plain, once with its
 * received rows summed onto `tokens` rows (combineToken), once with them weighted as they are
 * summed (combineWeight), the send rows gathered (sendRows) or not. With `resident`, the rows
 * are on the simulated device (sim:0, one a process) and the result says whether the results
 * stay there and how many copies crossed between host and device for the first two (the
 * weighted sum uploads its weights).
 */
export const combinedAllToAll = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const {
      mapping,
      c,
      chunks,
      pattern,
      viaSent,
      gather,
      tokens,
      dtype = "float64",
      resident = false,
    } = args as Scenarios.ChunkedArgs & { readonly tokens: number; readonly resident?: boolean }
    const group = groupOf(mapping, rank)
    const g = group.ranks.length
    const me = Group.localRank(group, rank)
    const sendSplits = Array.from({ length: g * chunks }, (_, i) => chunkRows(pattern, me, Math.floor(i / chunks), i % chunks))
    const recvSplits = Array.from({ length: g * chunks }, (_, i) => chunkRows(pattern, Math.floor(i / chunks), me, i % chunks))
    const rows = sendSplits.reduce((a, b) => a + b, 0)
    const received = recvSplits.reduce((a, b) => a + b, 0)
    // Gathered: the send buffer is rows (r + 1) mod (rows + 1) of a tensor one row longer.
    const sourceRows = gather ? rows + 1 : rows
    const values = Tensor.fromArray(valuesOf(rank, sourceRows * c, 2), [sourceRows, c], { dtype })
    const x = resident ? to(values, Device.sim(0)) : values
    const runtime = simulated(0)
    const before = runtime.transfers.uploads + runtime.transfers.downloads
    const sendRows = gather ? Int32Array.from({ length: rows }, (_, r) => (r + 1) % (rows + 1)) : undefined
    const index = Int32Array.from({ length: received }, (_, r) => combineToken(r, me, tokens))
    const request: Comm.Request = { op: "allToAllV", tensor: x, chunks, chunkOrder: viaSent ? "sent" : "received", sendSplits, recvSplits }
    const withRows = sendRows === undefined ? request : { ...request, sendRows }
    const comm = yield* Comm.Communicator
    const plain = yield* Effect.flatMap(comm.issue(group, withRows), (p) => p.await)
    const combined = yield* Effect.flatMap(comm.issue(group, { ...withRows, combine: { index, tokens } }), (p) => p.await)
    const moved = runtime.transfers.uploads + runtime.transfers.downloads - before
    const weights = DType.allocate(dtype, received)
    for (let r = 0; r < received; r++) weights[r] = combineWeight(r, me)
    const weighted = yield* Effect.flatMap(comm.issue(group, { ...withRows, combine: { index, tokens, weights } }), (p) => p.await)
    const stayed = [plain, combined, weighted].map((o) => !ArrayBuffer.isView(o.data))
    return {
      ...(resident ? { stayed, moved } : {}),
      me,
      plain: Array.from(Delivered.onHost(plain.data)),
      combined: Array.from(Delivered.onHost(combined.data)),
      weighted: Array.from(Delivered.onHost(weighted.data)),
      shape: [...combined.shape],
      splits: [...(combined.splits ?? [])],
      recvSplits,
    }
  })

/** Rank 0 names a token outside the result in its combine index; the others' are fine. */
export const combineBadIndex = (rank: number, args: unknown) =>
  Effect.flatMap(Comm.Communicator, (comm) => {
    const { world } = args as { world: number }
    const group = Group.make(
      "ep#0",
      Array.from({ length: world }, (_, r) => r),
    )
    const splits = Array.from({ length: world }, () => 1)
    const index = Int32Array.from({ length: world }, (_, r) => (rank === 0 && r === 1 ? 5 : r % 2))
    return Effect.flatMap(
      comm.issue(group, { op: "allToAllV", tensor: Tensor.zeros([world, 1], { dtype: "float64" }), sendSplits: splits, recvSplits: splits, combine: { index, tokens: 2 } }),
      (p) => p.await,
    )
  })

// The device-resident collectives (residentScenarios.ts), found by the runners through scenarios.ts as these are.
export { collectivesInFlightThenLink, residentCollectives, residentP2p, unmatchedResidentSend } from "./residentScenarios.js"
