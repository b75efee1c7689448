/**
 * The non-interleaved schedules as action lists: no pipelining (pp = 1) and 1F1B.
 *
 * No pipelining (semantics.md 3.1): loop over the micro-batches, forward then backward of each
 * (gradient sync off until the last one), so at most one micro-batch's activations are alive.
 *
 * 1F1B (semantics.md 3.3), rank r of P with M micro-batches, W = min(P - r - 1, M), S = M - W:
 *
 *   warmup   i < W : recvF(i) F(i) sendF(i)
 *   if S > 0       : recvF(W)
 *   steady   i < S : F(W+i) sendF(W+i) recvB(i) B(i) sendB(i) [recvF(W+i+1) unless last]
 *   cooldown i < W : recvB(S+i) B(S+i) sendB(S+i)
 *
 * The steady step's `sendF recvB` is the reference's send_forward_recv_backward and `sendB recvF`
 * its send_backward_recv_forward. The first rank receives no activation and sends no gradient;
 * the last sends no activation and receives no gradient (the loss gives it). Forward-only runs
 * the same warmup and steady forwards and skips every backward action.
 */
import * as A from "./Action.js"
import type { Action, Schedule } from "./Action.js"
import * as Plan from "./Plan.js"

/**
 * The no-pipelining schedule of a plan (one rank).
 * @category builders
 */
export const buildNoPipelining = (plan: Plan.Plan): Schedule => {
  const actions: Array<Action> = []
  for (let mb = 0; mb < plan.microBatches; mb++) {
    actions.push(A.forward(mb, 0))
    if (!plan.forwardOnly) actions.push(A.backward(mb, 0))
  }
  const phases = { warmup: 0, steady: plan.microBatches, cooldown: 0 }
  return A.schedule(plan, [phases], [actions])
}

/**
 * The 1F1B schedule of a plan (any pp; with pp = 1 it equals no pipelining).
 * @category builders
 */
export const buildOneFOneB = (plan: Plan.Plan): Schedule => {
  const { pp, microBatches, forwardOnly } = plan
  const phases = Array.from({ length: pp }, (_, r) => Plan.oneFOneBPhases(pp, r, microBatches, forwardOnly))
  const ranks = phases.map((ph, r) => rankActions(pp, r, ph.warmup, ph.steady, forwardOnly))
  return A.schedule(plan, phases, ranks)
}

const rankActions = (pp: number, r: number, warmup: number, steady: number, forwardOnly: boolean): Array<Action> => {
  const first = r === 0
  const last = r === pp - 1
  const out: Array<Action> = []
  const recvF = (mb: number) => {
    if (!first) out.push(A.recvForward(mb, 0, r - 1))
  }
  const sendF = (mb: number) => {
    if (!last) out.push(A.sendForward(mb, 0, r + 1))
  }
  const recvB = (mb: number) => {
    if (!last) out.push(A.recvBackward(mb, 0, r + 1))
  }
  const sendB = (mb: number) => {
    if (!first) out.push(A.sendBackward(mb, 0, r - 1))
  }

  for (let i = 0; i < warmup; i++) {
    recvF(i)
    out.push(A.forward(i, 0))
    sendF(i)
  }
  if (steady > 0) recvF(warmup)
  for (let i = 0; i < steady; i++) {
    const f = warmup + i
    const lastStep = i === steady - 1
    out.push(A.forward(f, 0))
    sendF(f)
    if (forwardOnly) {
      if (!lastStep) recvF(f + 1)
      continue
    }
    recvB(i)
    out.push(A.backward(i, 0))
    sendB(i)
    if (!lastStep) recvF(f + 1)
  }
  if (!forwardOnly) {
    for (let i = 0; i < warmup; i++) {
      const b = steady + i
      recvB(b)
      out.push(A.backward(b, 0))
      sendB(b)
    }
  }
  return out
}
