/**
 * Check: a static proof that a pipeline schedule runs to the end and moves the right tensors.
 *
 * All pp ranks' action lists run together against simulated links: one FIFO per (sender,
 * receiver, direction), between the pp ranks that hold neighbouring global stages (rank P-1
 * sends around the ring to rank 0 when interleaving). Sends are buffered and never block; a
 * receive blocks until its link has a message, and that message must be the one it expects
 * (same micro-batch, destined to the same chunk), or the schedule would silently pair the wrong
 * tensors. Because every receive names its link, the outcome does not depend on the order in
 * which ranks are advanced (a Kahn network), so one round-robin run decides every interleaving.
 *
 * Local rules checked as each action runs (the reference's buffers make them hard invariants):
 *  - a chunk forwards a micro-batch once, after receiving its input unless it is global stage 0;
 *  - it runs the backward once, after its forward and after receiving the output gradient unless
 *    it is the last global stage; with `backwardOrder: "fifo"` (default) the backwards of each
 *    chunk follow its forward order, since the reference pops saved activations from a FIFO;
 *  - a send names the rank holding the next (previous) stage and follows its compute;
 *  - the first stage receives no activation and sends no gradient, the last stage sends no
 *    activation and receives no gradient (semantics.md 3.2).
 * Dependencies between chunks (chunk v+1 of a micro-batch needs chunk v) are carried by the
 * links, so the input rule covers them. At the end every rank must have run every action, no
 * message may be left on a link, and every (micro-batch, chunk) must be forwarded and, when
 * training, backwarded on every rank.
 */
import * as Result from "effect/Result"
import type { Action, Direction } from "./Action.js"
import * as A from "./Action.js"
import * as Partition from "./Partition.js"

/**
 * What the checker needs: the action lists and the sizes they must cover (a Schedule fits).
 * The number of pp ranks is ranks.length.
 * @category models
 */
export interface CheckInput {
  readonly vpp: number
  readonly microBatches: number
  readonly forwardOnly: boolean
  readonly ranks: ReadonlyArray<ReadonlyArray<Action>>
}

/** @category models */
export interface CheckOptions {
  /** "fifo" (default): each chunk's backwards follow its forward order; "any": no order rule. */
  readonly backwardOrder?: "fifo" | "any" | undefined
}

/** A place in the schedule: pp rank, index in its list, and the action there. */
export interface At {
  readonly pp: number
  readonly step: number
  readonly action: Action
}

/** A micro-batch on a chunk (of the rank that receives or computes it). */
export interface Item {
  readonly microBatch: number
  readonly chunk: number
}

/** One FIFO link between two pp ranks. */
export interface Link {
  readonly from: number
  readonly to: number
  readonly direction: Direction
}

/** A message on a link: the sender's step and what it carries, in the receiver's terms. */
export interface InFlight extends Item {
  readonly link: Link
  readonly sender: At
}

/** A rank stuck on a receive, and the rank it waits for. */
export interface Blocked {
  readonly at: At
  readonly waitsOn: number
  /** The awaited rank has run all its actions: the send this receive needs is missing. */
  readonly waitsOnFinished: boolean
}

/**
 * Why a schedule fails.
 * @category errors
 */
export type CheckError =
  | {
      readonly _tag: "Mismatch"
      readonly link: Link
      readonly receiver: At
      readonly sender: At
      readonly expected: Item
      readonly arrived: Item
    }
  | { readonly _tag: "Deadlock"; readonly blocked: ReadonlyArray<Blocked>; readonly cycle: ReadonlyArray<number> }
  | { readonly _tag: "Leftover"; readonly messages: ReadonlyArray<InFlight> }
  | { readonly _tag: "Invalid"; readonly at: At; readonly reason: string }
  | { readonly _tag: "Missing"; readonly pp: number; readonly missing: ReadonlyArray<Item & { readonly compute: "forward" | "backward" }> }

/**
 * What a passing schedule did: actions run per rank and messages delivered.
 * @category models
 */
export interface CheckReport {
  readonly steps: ReadonlyArray<number>
  readonly messages: number
}

interface Queue {
  readonly items: Array<InFlight>
  head: number
}

interface RankState {
  pc: number
  readonly inputs: Set<number>
  readonly forwarded: Set<number>
  readonly sentForward: Set<number>
  readonly grads: Set<number>
  readonly backwarded: Set<number>
  readonly sentBackward: Set<number>
  /** Per chunk: micro-batches in forward order, and how many of them have run backward. */
  readonly forwardOrder: Array<Array<number>>
  readonly backwardCount: Array<number>
}

/**
 * Runs every rank's actions together and proves the schedule correct, or says why not.
 * @category checking
 */
export const check = (input: CheckInput, options?: CheckOptions): Result.Result<CheckReport, CheckError> => {
  const P = input.ranks.length
  const V = input.vpp
  const M = input.microBatches
  const fifo = (options?.backwardOrder ?? "fifo") === "fifo"
  const stages: Partition.Stages = { pp: P, vpp: V }
  const last = P * V - 1
  const links = new Map<string, Queue>()
  const queue = (link: Link): Queue => {
    const key = `${link.from}>${link.to}:${link.direction}`
    let q = links.get(key)
    if (q === undefined) links.set(key, (q = { items: [], head: 0 }))
    return q
  }
  const state: Array<RankState> = input.ranks.map(() => ({
    pc: 0,
    inputs: new Set(),
    forwarded: new Set(),
    sentForward: new Set(),
    grads: new Set(),
    backwarded: new Set(),
    sentBackward: new Set(),
    forwardOrder: Array.from({ length: V }, () => []),
    backwardCount: Array.from({ length: V }, () => 0),
  }))
  let delivered = 0

  /** Runs rank p's next action: "ran", "blocked", or the error. */
  const exec = (p: number, st: RankState, a: Action): "ran" | "blocked" | CheckError => {
    const at: At = { pp: p, step: st.pc, action: a }
    const invalid = (reason: string): CheckError => ({ _tag: "Invalid", at, reason })
    if (!Number.isInteger(a.microBatch) || a.microBatch < 0 || a.microBatch >= M) {
      return invalid(`micro-batch ${a.microBatch} is outside [0, ${M})`)
    }
    if (!Number.isInteger(a.chunk) || a.chunk < 0 || a.chunk >= V) return invalid(`chunk ${a.chunk} is outside [0, ${V})`)
    if (input.forwardOnly && (a._tag === "recvBackward" || a._tag === "backward" || a._tag === "sendBackward")) {
      return invalid("the schedule is forward-only, so it has no backward actions")
    }
    const stage = a.chunk * P + p
    const key = a.microBatch * V + a.chunk
    const where = `chunk ${a.chunk} of rank ${p} (stage ${stage})`
    const peer = (actual: number, other: number, role: string): CheckError | undefined => {
      const holder = Partition.holder(stages, other)
      return actual === holder.pp ? undefined : invalid(`${where} ${role} stage ${other} on rank ${holder.pp}, not rank ${actual}`)
    }
    const receive = (from: number, direction: Direction, done: Set<number>): "ran" | "blocked" | CheckError => {
      if (done.has(key)) return invalid(`${where} receives micro-batch ${a.microBatch} twice`)
      const q = queue({ from, to: p, direction })
      const head = q.items[q.head]
      if (head === undefined) return "blocked"
      if (head.microBatch !== a.microBatch || head.chunk !== a.chunk) {
        return {
          _tag: "Mismatch",
          link: head.link,
          receiver: at,
          sender: head.sender,
          expected: { microBatch: a.microBatch, chunk: a.chunk },
          arrived: { microBatch: head.microBatch, chunk: head.chunk },
        }
      }
      q.head++
      delivered++
      done.add(key)
      return "ran"
    }
    const send = (to: number, direction: Direction, target: number, done: Set<number>): "ran" | CheckError => {
      if (done.has(key)) return invalid(`${where} sends micro-batch ${a.microBatch} twice`)
      const chunk = Partition.holder(stages, target).chunk
      queue({ from: p, to, direction }).items.push({ link: { from: p, to, direction }, sender: at, microBatch: a.microBatch, chunk })
      done.add(key)
      return "ran"
    }
    switch (a._tag) {
      case "recvForward": {
        if (stage === 0) return invalid("the first stage reads its input from the data; it receives no activation")
        if (!Number.isInteger(a.fromPp) || a.fromPp < 0 || a.fromPp >= P) return invalid(`pp rank ${a.fromPp} does not exist`)
        return peer(a.fromPp, stage - 1, "takes its input from") ?? receive(a.fromPp, "forward", st.inputs)
      }
      case "recvBackward": {
        if (stage === last) return invalid("the last stage takes its output gradient from the loss; it receives none")
        if (!Number.isInteger(a.fromPp) || a.fromPp < 0 || a.fromPp >= P) return invalid(`pp rank ${a.fromPp} does not exist`)
        return peer(a.fromPp, stage + 1, "takes its output gradient from") ?? receive(a.fromPp, "backward", st.grads)
      }
      case "sendForward": {
        if (stage === last) return invalid("the last stage computes the loss; it sends no activation")
        if (!st.forwarded.has(key)) return invalid(`${where} sends micro-batch ${a.microBatch} before its forward`)
        return peer(a.toPp, stage + 1, "sends its output to") ?? send(a.toPp, "forward", stage + 1, st.sentForward)
      }
      case "sendBackward": {
        if (stage === 0) return invalid("the first stage has no previous stage; it sends no gradient")
        if (!st.backwarded.has(key)) return invalid(`${where} sends the gradient of micro-batch ${a.microBatch} before its backward`)
        return peer(a.toPp, stage - 1, "sends its input gradient to") ?? send(a.toPp, "backward", stage - 1, st.sentBackward)
      }
      case "forward": {
        if (st.forwarded.has(key)) return invalid(`${where} forwards micro-batch ${a.microBatch} twice`)
        if (stage !== 0 && !st.inputs.has(key)) return invalid(`${where} forwards micro-batch ${a.microBatch} before receiving its input`)
        st.forwarded.add(key)
        st.forwardOrder[a.chunk]?.push(a.microBatch)
        return "ran"
      }
      case "backward": {
        if (st.backwarded.has(key)) return invalid(`${where} runs the backward of micro-batch ${a.microBatch} twice`)
        if (!st.forwarded.has(key)) return invalid(`${where} runs the backward of micro-batch ${a.microBatch} before its forward`)
        if (stage !== last && !st.grads.has(key)) {
          return invalid(`${where} runs the backward of micro-batch ${a.microBatch} before receiving its output gradient`)
        }
        const n = st.backwardCount[a.chunk] ?? 0
        const oldest = st.forwardOrder[a.chunk]?.[n]
        if (fifo && oldest !== a.microBatch) {
          return invalid(`${where} runs the backward of micro-batch ${a.microBatch}, but its oldest saved forward is micro-batch ${oldest} (saved activations are a FIFO)`)
        }
        st.backwardCount[a.chunk] = n + 1
        st.backwarded.add(key)
        return "ran"
      }
    }
  }

  // Advance ranks round-robin until none can move.
  let progress = true
  while (progress) {
    progress = false
    for (let p = 0; p < P; p++) {
      const st = state[p]!
      const actions = input.ranks[p]!
      while (st.pc < actions.length) {
        const r = exec(p, st, actions[st.pc]!)
        if (r === "blocked") break
        if (r !== "ran") return Result.fail(r)
        st.pc++
        progress = true
      }
    }
  }

  const finished = (p: number) => state[p]!.pc >= input.ranks[p]!.length
  const blocked: Array<Blocked> = []
  for (let p = 0; p < P; p++) {
    if (finished(p)) continue
    const st = state[p]!
    const action = input.ranks[p]![st.pc]!
    const waitsOn = action._tag === "recvForward" || action._tag === "recvBackward" ? action.fromPp : p
    blocked.push({ at: { pp: p, step: st.pc, action }, waitsOn, waitsOnFinished: finished(waitsOn) })
  }
  if (blocked.length > 0) return Result.fail({ _tag: "Deadlock", blocked, cycle: findCycle(blocked) })

  const leftovers: Array<InFlight> = []
  for (const q of links.values()) leftovers.push(...q.items.slice(q.head))
  if (leftovers.length > 0) {
    leftovers.sort((x, y) => x.sender.pp - y.sender.pp || x.sender.step - y.sender.step)
    return Result.fail({ _tag: "Leftover", messages: leftovers })
  }

  for (let p = 0; p < P; p++) {
    const st = state[p]!
    const missing: Array<Item & { compute: "forward" | "backward" }> = []
    for (let chunk = 0; chunk < V; chunk++) {
      for (let microBatch = 0; microBatch < M; microBatch++) {
        const key = microBatch * V + chunk
        if (!st.forwarded.has(key)) missing.push({ compute: "forward", microBatch, chunk })
        if (!input.forwardOnly && !st.backwarded.has(key)) missing.push({ compute: "backward", microBatch, chunk })
      }
    }
    if (missing.length > 0) return Result.fail({ _tag: "Missing", pp: p, missing })
  }
  return Result.succeed({ steps: input.ranks.map((r) => r.length), messages: delivered })
}

/** A cycle in the wait-for graph of the blocked ranks, or [] when every chain ends at a finished rank. */
const findCycle = (blocked: ReadonlyArray<Blocked>): ReadonlyArray<number> => {
  const waits = new Map(blocked.map((b) => [b.at.pp, b.waitsOn]))
  for (const start of waits.keys()) {
    const path: Array<number> = []
    let p: number | undefined = start
    while (p !== undefined && !path.includes(p)) {
      path.push(p)
      p = waits.get(p)
    }
    if (p !== undefined) return path.slice(path.indexOf(p))
  }
  return []
}

/**
 * One sentence (or a short list) a person can act on.
 * @category formatting
 */
export const format = (e: CheckError): string => {
  const at = (x: At) => `rank ${x.pp} step ${x.step} (${A.format(x.action)})`
  const item = (x: Item) => `micro-batch ${x.microBatch} chunk ${x.chunk}`
  switch (e._tag) {
    case "Mismatch":
      return (
        `${at(e.receiver)} expects ${e.link.direction} ${item(e.expected)} from rank ${e.link.from}, ` +
        `but the next message on that link is ${item(e.arrived)}, sent at ${at(e.sender)}`
      )
    case "Deadlock": {
      const lines = e.blocked.map((b) => `${at(b.at)} waits on rank ${b.waitsOn}${b.waitsOnFinished ? ", which has finished without sending it" : ""}`)
      const cycle = e.cycle.length > 0 ? `; cycle ${[...e.cycle, e.cycle[0]].join(" -> ")}` : ""
      return `deadlock: ${lines.join("; ")}${cycle}`
    }
    case "Leftover":
      return `${e.messages.length} message(s) never received: ${e.messages
        .slice(0, 8)
        .map((m) => `${at(m.sender)} to rank ${m.link.to} ${item(m)}`)
        .join("; ")}${e.messages.length > 8 ? "; ..." : ""}`
    case "Invalid":
      return `${at(e.at)}: ${e.reason}`
    case "Missing":
      return `rank ${e.pp} never runs ${e.missing
        .slice(0, 8)
        .map((m) => `the ${m.compute} of ${item(m)}`)
        .join(", ")}${e.missing.length > 8 ? ", ..." : ""}`
  }
}
