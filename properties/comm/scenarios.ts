// Rank programs of the communicator contract and fault suites, run unchanged on every backend.
// Closures cannot cross into a worker, so every program is a named export
// `(rank, args) => Effect` with plain-data args, which any transport can import. Keep imports
// light: every worker loads this.
import * as Effect from "effect/Effect"
import * as Delivered from "../../src/comm/Delivered.js"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import type * as Families from "../../src/mapping/Families.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import type * as Mappings from "../../src/testing/Mappings.js"

/** A mapping (pleat/testing's plain form) and a family, as plain data (the contract's `mappingGroups`, cloneable). */
export interface MappingArgs extends Mappings.MappingArgs {
  readonly family: Families.FamilyName
}

/** Each rank's group in the family of the mapping. */
export const groupOf = (m: MappingArgs, rank: number): Group.Group => {
  const config = ParallelConfig.make({ world: m.world, tp: m.tp, cp: m.cp, pp: m.pp, ep: m.ep, etp: m.etp, order: m.order })
  return Group.ofFamily(config, m.family, rank)
}

/** Deterministic values for rank r (the same formula as properties/comm/backends.ts). */
export const valuesOf = (rank: number, n: number, salt = 0): Array<number> => Array.from({ length: n }, (_, i) => ((rank * 7919 + i * 104729 + salt * 31) % 1000) / 100 - 5)

const plainGroup = (g: Group.Group) => ({ name: g.name, ranks: [...g.ranks] })

/** A position-weighted sum: small to return and compare, yet any moved or changed element shows. */
export const checksum = (t: Tensor.Tensor): number => {
  let acc = 0
  for (let i = 0; i < t.data.length; i++) acc += (t.data[i] as number) * ((i % 13) + 1)
  return acc
}

export const reduceIdentities = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, blocks, c } = args as { mapping: MappingArgs; blocks: number; c: number }
    const group = groupOf(mapping, rank)
    const n = group.ranks.length
    const x = Tensor.fromArray(valuesOf(rank, blocks * n * c), [blocks * n, c], { dtype: "float64" })
    const sum = yield* Comm.allReduce(group, x)
    const viaScatter = yield* Comm.allGather(group, yield* Comm.reduceScatter(group, x))
    const max = yield* Comm.allReduce(group, Tensor.fromArray(valuesOf(rank, blocks * n * c, 1), [blocks * n, c], { dtype: "float32" }), "max")
    return { group: plainGroup(group), sum: Tensor.toArray(sum), viaScatter: Tensor.toArray(viaScatter), max: Tensor.toArray(max) }
  })

// Uneven reduce-scatter (some members get no rows), summed and maxed, then an empty barrier.
export const reduceScatterUneven = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, c, seed } = args as { mapping: MappingArgs; c: number; seed: number }
    const group = groupOf(mapping, rank)
    const counts = group.ranks.map((_, i) => (seed + i * 3) % 4)
    const rows = counts.reduce((a, b) => a + b, 0)
    const x = Tensor.fromArray(valuesOf(rank, rows * (c + 1)), [rows, c + 1], { dtype: "float64" })
    const sum = yield* (yield* Comm.start.reduceScatterV(group, x, counts)).await
    const y = Tensor.fromArray(valuesOf(rank, rows * (c + 1), 2), [rows, c + 1], { dtype: "float32" })
    const max = yield* (yield* Comm.start.reduceScatterV(group, y, counts, "max")).await
    yield* Comm.barrier(group)
    return { group: plainGroup(group), counts, sum: Tensor.toArray(sum), max: Tensor.toArray(max) }
  })

export const allToAllRoundTrip = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, c, pattern } = args as { mapping: MappingArgs; c: number; pattern: ReadonlyArray<number> }
    const group = groupOf(mapping, rank)
    const splits = group.ranks.map((_, j) => pattern[(rank + j) % pattern.length] as number)
    const rows = splits.reduce((a, b) => a + b, 0)
    const x = Tensor.fromArray(valuesOf(rank, rows * c), [rows, c], { dtype: "float64" })
    const there = yield* Comm.allToAllV(group, x, splits)
    const back = yield* Comm.allToAllV(group, there.tensor, there.recvSplits)
    const expectedRecv = group.ranks.map((m) => pattern[(m + Group.localRank(group, rank)) % pattern.length] as number)
    return { x: Tensor.toArray(x), back: Tensor.toArray(back.tensor), recv: there.recvSplits, expectedRecv, sentBack: back.recvSplits, splits, there: Tensor.toArray(there.tensor) }
  })

/** Rows of chunk l that group member s sends member j in the chunked scenarios (any rank computes anyone's). */
export const chunkRows = (pattern: ReadonlyArray<number>, s: number, j: number, l: number): number => pattern[(s * 7 + j * 3 + l * 5) % pattern.length] as number

/** The value of column col of row r of the block (s -> j, chunk l): which block and row it is, readable back. */
export const chunkValue = (s: number, j: number, l: number, r: number, col: number): number => s * 1e6 + j * 1e4 + l * 1e2 + r + col / 10

/** The chunked scenarios' arguments: the exchange's shape and the send buffer's kind. */
export interface ChunkedArgs {
  readonly mapping: MappingArgs
  readonly c: number
  readonly chunks: number
  readonly pattern: ReadonlyArray<number>
  readonly viaSent: boolean
  readonly gather: boolean
  readonly dtype?: "float32" | "float64"
}

/**
 * A chunked allToAllV each way ("received", then "sent" with the splits swapped, which must give
 * the input back) from a buffer of labelled rows; the results for the test's own oracle.
 */
export const chunkedAllToAll = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, c, chunks, pattern, viaSent, gather, dtype = "float64" } = args as ChunkedArgs
    const group = groupOf(mapping, rank)
    const g = group.ranks.length
    const me = Group.localRank(group, rank)
    const sendSplits = Array.from({ length: g * chunks }, (_, i) => chunkRows(pattern, me, Math.floor(i / chunks), i % chunks))
    const recvSplits = Array.from({ length: g * chunks }, (_, i) => chunkRows(pattern, Math.floor(i / chunks), me, i % chunks))
    // The send buffer: blocks (j, l) member-major, or chunk-major when the first exchange is "sent".
    const blocks: Array<[number, number]> = []
    for (let a = 0; a < (viaSent ? chunks : g); a++) for (let b = 0; b < (viaSent ? g : chunks); b++) blocks.push(viaSent ? [b, a] : [a, b])
    const values = blocks.flatMap(([j, l]) =>
      Array.from({ length: chunkRows(pattern, me, j, l) * c }, (_, i) => chunkValue(me, j, l, Math.floor(i / Math.max(c, 1)), i % Math.max(c, 1))),
    )
    const x = Tensor.fromArray(values, [sendSplits.reduce((a, b) => a + b, 0), c], { dtype })
    const first = viaSent ? "sent" : "received"
    const issue = (t: Tensor.Tensor, order: "received" | "sent", send: ReadonlyArray<number>, recv: ReadonlyArray<number>) =>
      Effect.flatMap(Comm.Communicator, (comm) =>
        Effect.flatMap(comm.issue(group, { op: "allToAllV", tensor: t, chunks, chunkOrder: order, sendSplits: send, recvSplits: recv }), (p) => p.await),
      )
    // With `gather`, the first exchange sends the same rows gathered from a source tensor that
    // holds them reversed (sendRows: the gather that undoes the reversal).
    const rows = sendSplits.reduce((a, b) => a + b, 0)
    const reversed = Tensor.fromArray(
      Array.from({ length: rows * c }, (_, i) => values[(rows - 1 - Math.floor(i / c)) * c + (i % c)] as number),
      [rows, c],
      { dtype },
    )
    const sendRows = Int32Array.from({ length: rows }, (_, r) => rows - 1 - r)
    const there = gather
      ? yield* Effect.flatMap(Comm.Communicator, (comm) =>
          Effect.flatMap(comm.issue(group, { op: "allToAllV", tensor: reversed, chunks, chunkOrder: first, sendSplits, recvSplits, sendRows }), (p) => p.await),
        )
      : yield* issue(x, first, sendSplits, recvSplits)
    const thereTensor = Tensor.fromStorage(Delivered.onHost(there.data), there.shape)
    const back = yield* issue(thereTensor, viaSent ? "received" : "sent", recvSplits, sendSplits)
    return { me, g, x: Tensor.toArray(x), there: Tensor.toArray(thereTensor), splits: [...(there.splits ?? [])], recvSplits, back: Array.from(Delivered.onHost(back.data)) }
  })

export const gatherV = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, c } = args as { mapping: MappingArgs; c: number }
    const rowsOf = (r: number) => r % 3
    const group = groupOf(mapping, rank)
    const x = Tensor.fromArray(valuesOf(rank, rowsOf(rank) * c), [rowsOf(rank), c], { dtype: "float32" })
    const g = yield* Comm.allGatherV(group, x)
    return { group: plainGroup(group), data: Tensor.toArray(g.tensor), splits: g.splits }
  })

export const broadcastAndSelf = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, rootSeed } = args as { mapping: MappingArgs; rootSeed: number }
    const group = groupOf(mapping, rank)
    const root = rootSeed % group.ranks.length
    const x = Tensor.fromArray(valuesOf(rank, 4), [2, 2], { dtype: "float64" })
    const b = yield* Comm.broadcast(group, x, root)
    const self = Group.make(`self#${rank}`, [rank])
    const own = yield* Comm.allReduce(self, x)
    const ownGather = yield* Comm.allGather(self, x)
    yield* Comm.barrier(group)
    return { b: Tensor.toArray(b), expected: valuesOf(group.ranks[root] as number, 4), own: Tensor.toArray(own), ownGather: Tensor.toArray(ownGather), x: Tensor.toArray(x) }
  })

export const p2pFifo = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, count } = args as { world: number; count: number }
    const next = (rank + 1) % world
    const prev = (rank + world - 1) % world
    for (let i = 0; i < count; i++) yield* Comm.send(next, Tensor.fromArray(valuesOf(rank, i), [i], { dtype: "float64" }))
    yield* Comm.send(next, Tensor.fromArray([rank], [1], { dtype: "float64" }), "other")
    const got: Array<Array<number>> = []
    const other = yield* Comm.recv(prev, "other")
    for (let i = 0; i < count; i++) got.push(Tensor.toArray(yield* Comm.recv(prev)))
    return { prev, got, other: Tensor.toArray(other) }
  })

/**
 * Messages of very different sizes in a row, on one tag: a large one (megabytes: past MPI's
 * eager limit, so its transfer finishes after a small one sent behind it) must still be received
 * first. Returns checksums in the order received.
 */
export const p2pLargeThenSmall = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, large } = args as { world: number; large: number }
    const next = (rank + 1) % world
    const prev = (rank + world - 1) % world
    yield* Comm.send(next, Tensor.fromArray(valuesOf(rank, large), [large], { dtype: "float64" }))
    yield* Comm.send(next, Tensor.fromArray(valuesOf(rank, 3, 1), [3], { dtype: "float64" }))
    yield* Comm.send(next, Tensor.fromArray(valuesOf(rank, large, 2), [large], { dtype: "float64" }))
    const got: Array<number> = []
    for (let i = 0; i < 3; i++) got.push(checksum(yield* Comm.recv(prev)))
    const f64 = (values: Array<number>) => checksum(Tensor.fromArray(values, [values.length], { dtype: "float64" }))
    const expected = [f64(valuesOf(prev, large)), f64(valuesOf(prev, 3, 1)), f64(valuesOf(prev, large, 2))]
    return { got, expected }
  })

/** Receive buffers reused over steps, and overlapping collectives on two groups. */
export const receiveBuffers = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, c, steps } = args as { world: number; c: number; steps: number }
    const group = Group.world(world)
    const pairs = Group.make(`pair#${rank >> 1}`, rank % 2 === 0 ? [rank, Math.min(rank + 1, world - 1)].filter((r, i, a) => a.indexOf(r) === i) : [rank - 1, rank])
    const receive = Tensor.zeros([world * 2, c], { dtype: "float32" })
    const gathered = Tensor.zeros([world, c], { dtype: "float32" })
    const out: Array<Array<number>> = []
    for (let s = 0; s < steps; s++) {
      const x = Tensor.fromArray(valuesOf(rank, world * 2 * c, s), [world * 2, c], { dtype: "float32" })
      const a2a = yield* Comm.start.allToAllV(group, x, new Array<number>(world).fill(2), receive)
      const pair = yield* Comm.start.allReduce(pairs, x)
      const g = yield* Comm.allGather(group, Tensor.fromArray(valuesOf(rank, c, s), [1, c], { dtype: "float32" }), gathered)
      const r = yield* a2a.await
      const p = yield* pair.await
      out.push([checksum(r.tensor), checksum(g), checksum(p)])
      if (r.tensor.data !== receive.data || g.data !== gathered.data) return yield* Effect.die(new Error("the receive buffer was not used"))
    }
    return out
  })

/** Large allReduces (the cooperative path), on the mapping's groups, repeated (chunks reused). */
export const bigAllReduce = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, length, steps } = args as { mapping: MappingArgs; length: number; steps: number }
    const group = groupOf(mapping, rank)
    const out: Array<number> = []
    const receive = Tensor.zeros([length], { dtype: "float32" })
    for (let s = 0; s < steps; s++) {
      const x = Tensor.fromArray(valuesOf(rank, length, s), [length], { dtype: s % 2 === 0 ? "float32" : "float64" })
      const sum = yield* Comm.start.allReduce(group, x)
      const max = yield* Comm.allReduce(Group.world(mapping.world), x, "max")
      const r = yield* sum.await
      // A checksum keeps the result small; every element still counts.
      out.push(checksum(r), checksum(max))
    }
    const intoReceive = yield* Comm.start.allGather(Group.make(`self#${rank}`, [rank]), Tensor.fromArray(valuesOf(rank, length), [length], { dtype: "float32" }), receive)
    out.push(checksum(yield* intoReceive.await))
    return out
  })

/** Zero-copy mode: each rank overwrites its shared input as soon as its collectives complete. */
export const zeroCopyReuse = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, c, steps } = args as { world: number; c: number; steps: number }
    const group = Group.world(world)
    const x = Tensor.zeros([world, c], { dtype: "float64", shared: true })
    const out: Array<number> = []
    for (let s = 0; s < steps; s++) {
      x.data.set(valuesOf(rank, world * c, s))
      const r = yield* Comm.allToAllV(group, x, new Array<number>(world).fill(1))
      const g = yield* Comm.allGather(group, x)
      out.push(checksum(r.tensor), checksum(g))
    }
    return out
  })

export * from "./combineScenarios.js"
export * from "./faultScenarios.js"
