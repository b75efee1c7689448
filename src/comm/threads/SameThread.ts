/**
 * SameThread: what the ranks of one job that share a worker thread share in it. A collective
 * whose members all live on this thread meets in an in-thread rendezvous, as the local
 * backend's ranks do (the last to arrive computes every result, no shared-memory protocol, no
 * doorbell), and a p2p message between two of them goes straight into the receiver's inbox (no
 * MessagePort). Groups with a member on another thread use the control block (ThreadComm), so a
 * group takes one path for the whole job: its membership decides.
 *
 * One instance per thread and job, found by the job's id.
 */
import type * as Collective from "../Collective.js"
import { ThreadSide } from "./Doorbell.js"
import type { Inbox } from "../Inbox.js"
import * as LocalFabric from "../LocalFabric.js"
import type { Rendezvous } from "../Rendezvous.js"

/**
 * The ranks of one job on this thread.
 * @category models
 */
export class SameThread {
  readonly rendezvous: Rendezvous<Collective.Contribution, LocalFabric.Waiter>
  readonly inboxes = new Map<number, Inbox>()
  /** The doorbells' view of this thread (Doorbell). */
  readonly doorbells = new ThreadSide()

  constructor(timeoutMs: number, copy: boolean) {
    this.rendezvous = LocalFabric.rendezvous(timeoutMs, !copy)
  }
}

// Per thread (module state is per worker), by job id (a SharedArrayBuffer arrives as a new
// object with every message, so the job's buffers cannot key it).
const jobs = new Map<number, { readonly here: SameThread; readonly ranks: Set<number> }>()

/**
 * This thread's share of job `job`, for `rank` (given back by `leave`).
 * @category constructors
 */
export const join = (job: number, rank: number, timeoutMs: number, copy: boolean): SameThread => {
  let entry = jobs.get(job)
  if (entry === undefined) {
    entry = { here: new SameThread(timeoutMs, copy), ranks: new Set() }
    jobs.set(job, entry)
  }
  entry.ranks.add(rank)
  return entry.here
}

/**
 * `rank` is done with job `job` on this thread; the last one to leave forgets the job.
 * @category constructors
 */
export const leave = (job: number, rank: number): void => {
  const entry = jobs.get(job)
  if (entry === undefined) return
  entry.ranks.delete(rank)
  entry.here.inboxes.delete(rank)
  if (entry.ranks.size > 0) return
  jobs.delete(job)
  // The thread's core, if lent while it waited on its bell, comes back with the job's end.
  entry.here.doorbells.reclaim()
}
