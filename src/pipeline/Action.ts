/**
 * Action: one step of a pipeline rank's schedule, and the schedule as data.
 *
 * A schedule is, for each pp rank, the ordered list of what that rank does: compute a forward or
 * backward of one (micro-batch, model chunk), or move one tensor to or from a neighbouring pp
 * rank. Keeping it as plain data (instead of code that runs) lets the checker prove it cannot
 * deadlock, the simulator time it, and tests compare it against the reference's worked examples.
 *
 * `chunk` is always the chunk on the rank that runs the action: for a receive, the chunk that
 * will consume the tensor; for a send, the chunk that produced it. A combined exchange of the
 * reference (e.g. send_forward_recv_backward) is written as its sends followed by its receives:
 * sends never block here, so this order waits exactly as long as the batched exchange.
 */

/**
 * One action of a pipeline rank.
 * @category models
 */
export type Action =
  | { readonly _tag: "recvForward"; readonly microBatch: number; readonly chunk: number; readonly fromPp: number }
  | { readonly _tag: "forward"; readonly microBatch: number; readonly chunk: number }
  | { readonly _tag: "sendForward"; readonly microBatch: number; readonly chunk: number; readonly toPp: number }
  | { readonly _tag: "recvBackward"; readonly microBatch: number; readonly chunk: number; readonly fromPp: number }
  | { readonly _tag: "backward"; readonly microBatch: number; readonly chunk: number }
  | { readonly _tag: "sendBackward"; readonly microBatch: number; readonly chunk: number; readonly toPp: number }

/** A compute action (forward or backward). */
export type Compute = Extract<Action, { readonly _tag: "forward" | "backward" }>

/** A receive action. */
export type Recv = Extract<Action, { readonly _tag: "recvForward" | "recvBackward" }>

/** A send action. */
export type Send = Extract<Action, { readonly _tag: "sendForward" | "sendBackward" }>

/** Which way a tensor travels: activations forward, gradients backward. */
export type Direction = "forward" | "backward"

/**
 * Warmup, steady (1F1B) and cooldown counts of one rank (semantics.md 3.3 and 3.4). For the
 * interleaved schedule they count virtual micro-batches (micro-batch, chunk pairs).
 * @category models
 */
export interface Phases {
  readonly warmup: number
  readonly steady: number
  readonly cooldown: number
}

/**
 * Which schedule the reference would run (semantics.md 3.1).
 * @category models
 */
export type ScheduleKind = "noPipelining" | "oneFOneB" | "interleaved"

/**
 * A schedule: the action list of every pp rank, with the parameters it was built from.
 * @category models
 */
export interface Schedule {
  readonly kind: ScheduleKind
  readonly pp: number
  /** Model chunks per rank (1 without interleaving). */
  readonly vpp: number
  readonly microBatches: number
  /** The interleaved schedule's N (contiguous micro-batches per virtual stage); else undefined. */
  readonly microbatchGroupSize: number | undefined
  /** Forward passes only (evaluation): no backward, no gradient traffic. */
  readonly forwardOnly: boolean
  readonly phases: ReadonlyArray<Phases>
  readonly ranks: ReadonlyArray<ReadonlyArray<Action>>
}

/**
 * The schedule of a plan: its fields written out (scripts/check-spreads.mjs), with the phases
 * and actions of every rank.
 * @category constructors
 */
export const schedule = (
  plan: Omit<Schedule, "phases" | "ranks">,
  phases: ReadonlyArray<Phases>,
  ranks: ReadonlyArray<ReadonlyArray<Action>>,
  microbatchGroupSize = plan.microbatchGroupSize,
): Schedule => ({ kind: plan.kind, pp: plan.pp, vpp: plan.vpp, microBatches: plan.microBatches, microbatchGroupSize, forwardOnly: plan.forwardOnly, phases, ranks })

/** @category constructors */
export const recvForward = (microBatch: number, chunk: number, fromPp: number): Action => ({
  _tag: "recvForward",
  microBatch,
  chunk,
  fromPp,
})

/** @category constructors */
export const forward = (microBatch: number, chunk: number): Action => ({ _tag: "forward", microBatch, chunk })

/** @category constructors */
export const sendForward = (microBatch: number, chunk: number, toPp: number): Action => ({
  _tag: "sendForward",
  microBatch,
  chunk,
  toPp,
})

/** @category constructors */
export const recvBackward = (microBatch: number, chunk: number, fromPp: number): Action => ({
  _tag: "recvBackward",
  microBatch,
  chunk,
  fromPp,
})

/** @category constructors */
export const backward = (microBatch: number, chunk: number): Action => ({ _tag: "backward", microBatch, chunk })

/** @category constructors */
export const sendBackward = (microBatch: number, chunk: number, toPp: number): Action => ({
  _tag: "sendBackward",
  microBatch,
  chunk,
  toPp,
})

/** @category guards */
const isCompute = (a: Action): a is Compute => a._tag === "forward" || a._tag === "backward"

/** @category guards */
export const isRecv = (a: Action): a is Recv => a._tag === "recvForward" || a._tag === "recvBackward"

/** @category guards */
export const isSend = (a: Action): a is Send => a._tag === "sendForward" || a._tag === "sendBackward"

/** The direction a receive or send moves its tensor. */
export const directionOf = (a: Recv | Send): Direction => (a._tag === "recvForward" || a._tag === "sendForward" ? "forward" : "backward")

/**
 * A short text for an action, in the reference docs' notation for computes: `F3c1` is the forward
 * of micro-batch 3 on chunk 1, `B3c1` its backward; `rF3c1<2` receives its input from pp rank 2,
 * `sF3c1>0` sends its output to pp rank 0 (likewise `rB`, `sB` for gradients).
 * @category formatting
 */
export const format = (a: Action): string => {
  const id = `${a.microBatch}c${a.chunk}`
  switch (a._tag) {
    case "forward":
      return `F${id}`
    case "backward":
      return `B${id}`
    case "recvForward":
      return `rF${id}<${a.fromPp}`
    case "recvBackward":
      return `rB${id}<${a.fromPp}`
    case "sendForward":
      return `sF${id}>${a.toPp}`
    case "sendBackward":
      return `sB${id}>${a.toPp}`
  }
}

/**
 * The compute actions of one rank's list, in order (what the reference's worked examples list).
 * @category formatting
 */
export const computes = (actions: ReadonlyArray<Action>): ReadonlyArray<Compute> => actions.filter(isCompute)
