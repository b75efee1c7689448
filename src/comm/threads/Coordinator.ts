/**
 * Coordinator: the rendezvous of a threads job, on the main thread: the one Rendezvous of
 * src/comm with a transport that posts messages.
 *
 * Members arrive with metadata only (their data stays in shared memory). A failure goes to the
 * member's worker as `fail`; when a slot completes the coordinator computes nothing: it hands
 * every member the list of parts (SharedArrayBuffer views) and each member computes its own
 * output in its own thread, in parallel with the others. A slot that failed never completes,
 * so nobody ever reads a failed slot's buffers: the owners may reuse them once they see the
 * failure.
 */
import * as CommError from "../CommError.js"
import type * as Group from "../Group.js"
import { Rendezvous } from "../Rendezvous.js"
import type { Part, ToWorker } from "./Protocol.js"

/** Where the coordinator posts: one rank's worker. */
export type Post = (rank: number, message: ToWorker) => void

interface Waiter {
  readonly rank: number
  /** The member's op id. */
  readonly id: number
}

/**
 * The coordinator of one job.
 * @category models
 */
export class Coordinator {
  readonly job: number
  readonly timeoutMs: number
  readonly #rendezvous: Rendezvous<Part, Waiter>

  constructor(job: number, timeoutMs: number, post: Post) {
    this.job = job
    this.timeoutMs = timeoutMs
    this.#rendezvous = new Rendezvous<Part, Waiter>({
      timeoutMs,
      fail: (w, error) => post(w.rank, { t: "fail", job, id: w.id, error: CommError.fields(error) }),
      complete: (_group, _seq, arrivals) => {
        const parts = arrivals.map((a) => a.part)
        for (const a of arrivals) post(a.waiter.rank, { t: "complete", job, id: a.waiter.id, parts })
      },
      receiveBuffer: (part) => part.out,
    })
  }

  /** Every waiting member and every later arrival fails with Closed. */
  close(why: string): void {
    this.#rendezvous.close(why)
  }

  /** Member `part.rank` arrives at collective `seq` of `group` as its op `id`. */
  arrive(id: number, group: Group.Group, seq: number, part: Part): void {
    this.#rendezvous.arrive(group, seq, part, { rank: part.rank, id })
  }
}
