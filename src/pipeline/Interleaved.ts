/**
 * The interleaved (virtual pipeline) 1F1B schedule as action lists (semantics.md 3.4).
 *
 * Rank r runs the virtual micro-batches k = 0..M*V-1 of the schedule table: F[0..W-1], then
 * alternately F[W+i], B[i], then the remaining B. After each compute step the reference does one
 * combined exchange (no p2p overlap): send what this step produced, and receive what the NEXT
 * step needs. Receives follow recv_tensor_from_previous_stage:
 *
 *  - A non-leading rank receives, after step k, the input of step k+1 (forward: chunk(k+1) from
 *    rank r-1; backward: the mirrored chunk of k+1 from rank r+1).
 *  - The leading rank (rank 0 in forward, rank P-1 in backward) runs P-1 steps ahead of the far
 *    end of the ring. After step k >= P-1 it receives what the far end produced at its step
 *    k-(P-1), unless that came from the far end's last chunk (V-1 forward, 0 backward, which
 *    send nothing around the ring); the tensor feeds chunk c'+1 (forward) or c'-1 (backward).
 *  - No receive after the final step k = M*V-1 (nothing follows).
 *
 * Before the warmup every rank but 0 receives the input of F[0]. The output gradient of B[0]
 * (chunk V-1) is received in the warmup's last exchange, or just before the cooldown when the
 * whole run is warmup; the last rank takes it from the loss instead. An activation is not sent
 * from the last chunk of the last rank, a gradient not from chunk 0 of rank 0. Receives may run
 * far ahead of use: rank 0 buffers inputs of later chunks, as the reference's queues do.
 */
import * as A from "./Action.js"
import type { Action, Schedule } from "./Action.js"
import * as Plan from "./Plan.js"

/**
 * The interleaved schedule of a validated plan (kind "interleaved").
 * @category builders
 */
export const buildInterleaved = (plan: Plan.Plan): Schedule => {
  const { pp, vpp, microBatches, forwardOnly } = plan
  const n = plan.microbatchGroupSize ?? pp
  const table = Plan.scheduleTable(microBatches, vpp, n)
  const phases = Array.from({ length: pp }, (_, r) => Plan.interleavedPhases(pp, vpp, r, microBatches, n, forwardOnly))
  const ranks = phases.map((ph, r) => rankActions({ pp, vpp, rank: r, table, warmup: ph.warmup, forwardOnly }))
  return A.schedule(plan, phases, ranks, n)
}

interface RankInput {
  readonly pp: number
  readonly vpp: number
  readonly rank: number
  readonly table: ReadonlyArray<Plan.Slot>
  readonly warmup: number
  readonly forwardOnly: boolean
}

const rankActions = ({ pp, vpp, rank, table, warmup, forwardOnly }: RankInput): Array<Action> => {
  const total = table.length
  const remaining = total - warmup
  const allWarmup = remaining === 0
  const first = rank === 0
  const last = rank === pp - 1
  const nextPp = (rank + 1) % pp
  const prevPp = (rank - 1 + pp) % pp
  const fwd = (k: number): Plan.Slot => slot(table, k)
  const bwd = (k: number): Plan.Slot => {
    const s = slot(table, k)
    return { microBatch: s.microBatch, chunk: vpp - 1 - s.chunk }
  }
  const out: Array<Action> = []

  const forwardStep = (k: number) => out.push(A.forward(fwd(k).microBatch, fwd(k).chunk))
  const backwardStep = (k: number) => out.push(A.backward(bwd(k).microBatch, bwd(k).chunk))
  const sendF = (k: number) => {
    const s = fwd(k)
    if (!(last && s.chunk === vpp - 1)) out.push(A.sendForward(s.microBatch, s.chunk, nextPp))
  }
  const sendB = (k: number) => {
    const s = bwd(k)
    if (!(first && s.chunk === 0)) out.push(A.sendBackward(s.microBatch, s.chunk, prevPp))
  }
  // The receive posted after forward step k (for the next forward input), if any.
  const recvF = (k: number) => {
    if (k === total - 1) return
    if (!first) {
      const s = fwd(k + 1)
      out.push(A.recvForward(s.microBatch, s.chunk, prevPp))
      return
    }
    if (k < pp - 1) return
    const far = fwd(k - (pp - 1))
    if (far.chunk === vpp - 1) return
    out.push(A.recvForward(far.microBatch, far.chunk + 1, prevPp))
  }
  // The receive posted after backward step k (for the next output gradient), if any.
  const recvB = (k: number) => {
    if (k === total - 1) return
    if (!last) {
      const s = bwd(k + 1)
      out.push(A.recvBackward(s.microBatch, s.chunk, nextPp))
      return
    }
    if (k < pp - 1) return
    const far = bwd(k - (pp - 1))
    if (far.chunk === 0) return
    out.push(A.recvBackward(far.microBatch, far.chunk - 1, nextPp))
  }
  // The output gradient of B[0] (chunk V-1), which the last rank takes from the loss.
  const recvFirstGrad = () => {
    if (!last) out.push(A.recvBackward(bwd(0).microBatch, bwd(0).chunk, nextPp))
  }

  if (!first) out.push(A.recvForward(fwd(0).microBatch, fwd(0).chunk, prevPp))
  for (let k = 0; k < warmup; k++) {
    forwardStep(k)
    sendF(k)
    recvF(k)
    if (k === warmup - 1 && !forwardOnly && !allWarmup) recvFirstGrad()
  }
  for (let i = 0; i < remaining; i++) {
    const f = warmup + i
    forwardStep(f)
    backwardStep(i)
    sendF(f)
    sendB(i)
    recvF(f)
    recvB(i)
  }
  if (!forwardOnly) {
    if (allWarmup) recvFirstGrad()
    for (let k = remaining; k < total; k++) {
      backwardStep(k)
      sendB(k)
      recvB(k)
    }
  }
  return out
}

const slot = (table: ReadonlyArray<Plan.Slot>, k: number): Plan.Slot => {
  const s = table[k]
  if (s === undefined) throw new RangeError(`virtual micro-batch ${k} is outside the schedule table (${table.length})`)
  return s
}
