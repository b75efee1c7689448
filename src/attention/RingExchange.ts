/**
 * RingExchange: gathers every cp member's K/V block by passing blocks around the ring with
 * point-to-point transfers (cp - 1 steps: send what you got last step to the next member,
 * receive from the previous one), instead of one allgather collective.
 *
 * The result equals allGather over the group (blocks in group-local order), so its adjoint is
 * the same reduce-scatter. The ring's advantage on a real network is that each step's transfer
 * can overlap attention on the block already received; bench `attention` measures both.
 * `ringAllGatherLaid` declares the exchange like the typed allGather channel (LaidCollective):
 * rows split over cp in, rows whole over cp out.
 */
import * as Effect from "effect/Effect"
import * as Delivered from "../comm/Delivered.js"
import { Communicator } from "../comm/Communicator.js"
import type { Group } from "../comm/Group.js"
import { LayoutError } from "../dataflow/Layout.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import * as Autograd from "../tensor/Autograd.js"
import * as Device from "../tensor/Device.js"
import * as Place from "../tensor/device/Place.js"
import { to } from "../tensor/ops/Transfer.js"
import * as Tensor from "../tensor/Tensor.js"

/** Every member's rows in group-local order, gathered around the ring; backward reduce-scatters. */
const ringAllGather = (group: Group, x: Tensor.Tensor, tag = "ring") => Effect.gen(() => ringAllGatherSteps(group, x, tag))

/** ringAllGather's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* ringAllGatherSteps(group: Group, x: Tensor.Tensor, tag: string) {
  const comm = yield* Communicator
  const n = group.ranks.length
  const me = group.ranks.indexOf(comm.rank)
  const next = group.ranks[(me + 1) % n] as number
  const prev = group.ranks[(me - 1 + n) % n] as number
  const blocks = new Array<Tensor.Tensor>(n)
  blocks[me] = Tensor.detach(x)
  let current = blocks[me] as Tensor.Tensor
  for (let step = 1; step < n; step++) {
    yield* comm.send(next, current, tag)
    current = yield* comm.recv(prev, tag)
    blocks[(me - step + n) % n] = current
  }
  const rowSize = Tensor.sizeOf(x.shape.slice(1))
  const total = blocks.reduce((acc, b) => acc + (b.shape[0] ?? 0), 0)
  // Assembled where the blocks are (on a device, copies of ranges: nothing through the host).
  // (A block labelled with another device, a simulated one of another rank, comes over first.)
  const place = Place.of("ringAllGather", x)
  const out = place.allocate(x.dtype, total * rowSize)
  let offset = 0
  for (const b of blocks) {
    if (b.size > 0) place.copyRange(place.operand(Device.same(b.device, x.device) ? b : to(b, x.device)), 0, out, offset, b.size)
    offset += b.size
  }
  return Autograd.resultEffect("ringAllGather", [x], out, [total, ...x.shape.slice(1)], (g) =>
    Effect.map(
      Effect.flatMap(comm.issue(group, { op: "reduceScatter", tensor: g, reduce: "sum" }), (p) => p.await),
      (o) => [Delivered.tensorOf(o, g.device)],
    ),
  )
}

/**
 * The ring exchange on laid rows split over cp: every member's rows, no longer split over cp.
 * @category combinators
 */
export const ringAllGatherLaid = (group: Group, x: TensorLayout.WithLayout, tag = "ring") => Effect.gen(() => ringAllGatherLaidSteps(group, x, tag))

/** ringAllGatherLaid's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* ringAllGatherLaidSteps(group: Group, x: TensorLayout.WithLayout, tag: string) {
  const split = x.layout.dims[0]?.over.some((s) => s.axis === "cp") ?? false
  if (group.ranks.length > 1 && !split) {
    return yield* Effect.fail(new LayoutError({ op: "ringAllGather", detail: `over cp needs rows split over cp but the tensor is ${TensorLayout.format(x.layout)}` }))
  }
  return TensorLayout.attach(yield* ringAllGather(group, x.tensor, tag), TensorLayout.gather(x.layout, "cp"))
}
