/**
 * NcclChain: one NCCL communicator as the backend drives it (a group's, NcclEngine; a link's,
 * NcclLinks): its own stream, the communicator's handle once every member joined, and the
 * runs queued on it in issue order (each after the one before was queued), settling when the
 * stream has run them. At the job's end it is destroyed once its runs are done, or aborted.
 */
import type * as Nccl from "../../native/Nccl.js"

/**
 * A communicator and its queue.
 * @category models
 */
export interface Chain {
  /** Resolves with the communicator once every member joined; each run chains on it. */
  queued: Promise<number>
  readonly stream: number
  readonly runs: Set<Promise<unknown>>
}

/**
 * A chain on a communicator being made (`made`: ncclCommInitRank's promise) with its stream.
 * @category constructors
 */
export const make = (made: Promise<number>, stream: number): Chain => ({ queued: made, stream, runs: new Set() })

/**
 * Queues `calls` (NcclPlan.encode's) over `send` / `recv` after the chain's earlier runs;
 * settles when the stream has run them. `track` sees the run (MpiSession.track).
 * @category combinators
 */
export const enqueue = (
  native: Nccl.Native,
  chain: Chain,
  calls: Float64Array,
  send: Nccl.RunBuffer,
  recv: Nccl.RunBuffer,
  track: <T>(work: Promise<T>) => Promise<T>,
): Promise<void> => {
  let ran: Promise<void> | undefined
  chain.queued = chain.queued.then((handle) => {
    ran = native.run(handle, chain.stream, calls, send, recv)
    return handle
  })
  const finished = track(chain.queued.then(() => ran as Promise<void>))
  chain.runs.add(finished)
  const forget = () => void chain.runs.delete(finished)
  finished.then(forget, forget)
  return finished
}

/**
 * Ends a chain's communicator: a clean job's is destroyed after its last run, a failed job's
 * aborted (its runs may wait for a peer that is gone).
 * @category destructors
 */
export const release = (native: Nccl.Native, chain: Chain, clean: boolean): void => {
  const free = (handle: number) => {
    try {
      native.free(handle, !clean)
    } catch {
      // A communicator that cannot be freed is the process's to drop at exit.
    }
  }
  if (clean) void Promise.allSettled([...chain.runs]).then(() => chain.queued.then(free, () => undefined))
  else void chain.queued.then(free, () => undefined)
}
