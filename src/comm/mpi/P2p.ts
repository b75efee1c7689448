/**
 * P2p: the point-to-point messages of one job on the MPI transport. A message is one tensor
 * frame on MPI (its values in the frame), or, when the job's DataEngine carries it (the NCCL
 * backend's links between device-resident tensors), an announcement frame without payload while
 * the engine moves the values.
 *
 * MPI delivers the frames from one sender in the order they were sent, and the sender starts the
 * engine's send of a message before its announcement, in post order. The receiver hands each
 * announcement to the engine as it arrives (so the engine's receives are posted in the sender's
 * order) and puts every message from a sender into the inbox in arrival order: a frame behind an
 * announcement waits for the engine's receive, so a receiver never sees a later message first,
 * whatever carried it.
 */
import type * as Tensor from "../../tensor/Tensor.js"
import type { Inbox } from "../Inbox.js"
import type { DataEngine } from "./DataEngine.js"
import * as Frame from "./Frame.js"
import type { Session } from "./MpiSession.js"

/**
 * A job's p2p on this rank: `post` sends, `arrived` takes what the session received.
 * @category models
 */
export interface P2p {
  readonly post: (to: number, t: Tensor.Tensor, tag: string) => void
  readonly arrived: (from: number, frame: Frame.Received) => void
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * The p2p of job `job`; a failure closes the inbox (`fail`), failing every waiting receive.
 * @category constructors
 */
export const make = (
  session: Pick<Session, "sendTensor">,
  job: number,
  inbox: Pick<Inbox, "deliver">,
  fail: (why: string) => void,
  engine?: Pick<DataEngine, "backend" | "p2p">,
): P2p => {
  // Per sender: the delivery of its last message an engine carries, while it is pending.
  const pending = new Map<number, Promise<void>>()

  const post = (to: number, t: Tensor.Tensor, tag: string): void => {
    const carried = engine?.p2p?.send(to, t, (error) => fail(`${engine.backend} send to rank ${to} failed: ${error}`))
    const frame = carried === undefined ? Frame.tensor(job, tag, t) : Frame.announcement(job, tag, t, carried)
    session.sendTensor(to, frame, (error) => {
      if (error !== undefined) fail(`MPI send to rank ${to} failed: ${error}`)
    })
  }

  const arrived = (from: number, frame: Frame.Received): void => {
    const { head, tensor } = frame
    let values: Tensor.Tensor | Promise<Tensor.Tensor>
    if (tensor !== undefined) values = tensor
    else if (engine?.p2p === undefined) return fail(`rank ${from} announced a message whose values an engine carries, and this rank has none`)
    else values = engine.p2p.receive(from, head)
    const before = pending.get(from)
    if (before === undefined && tensor !== undefined) return inbox.deliver(from, head.tag, tensor)
    // Settled at once (a failed receive is never left unhandled while it waits its turn).
    const outcome = Promise.resolve(values).then(
      (t) => ({ t }),
      (error: unknown) => ({ error: message(error) }),
    )
    const delivered = (before ?? Promise.resolve())
      .then(() => outcome)
      .then((o) => ("t" in o ? inbox.deliver(from, head.tag, o.t) : fail(`${engine?.backend} receive from rank ${from} failed: ${o.error}`)))
    pending.set(from, delivered)
    void delivered.then(() => {
      if (pending.get(from) === delivered) pending.delete(from)
    })
  }

  return { post, arrived }
}
