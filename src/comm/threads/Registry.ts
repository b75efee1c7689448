/**
 * Registry: the shared buffers one rank's peers may read, known by number. A control block
 * holds numbers, not buffers (memory cannot hold a reference to memory), so the first time a
 * rank's part lies in a buffer that a peer has not seen, the rank posts the buffer to that peer
 * on their direct channel (a MessagePort between the two workers; posting a SharedArrayBuffer
 * shares it, no copy) before it publishes the part. A reader that meets a number it does not
 * know yet waits for that message, which is already on its way.
 *
 * Pooled chunks are sent once per peer and job. A zero-copy tensor's own buffer is sent when it
 * is first used; once the owner's thread has dropped it (garbage collected: no collective of it
 * is in flight, since a pending op holds its data) the peers are told to forget it, so a job
 * that makes fresh shared tensors does not pile them up in its peers.
 */
import type { PeerMessage } from "./Protocol.js"

/** Posts to the peer of rank `to` (undefined once the job closed). */
export type PostToPeer = (to: number, message: PeerMessage) => void

interface Entry {
  readonly id: number
  readonly told: Set<number>
}

/**
 * One rank's registry for one job.
 * @category models
 */
export class Registry {
  readonly #post: PostToPeer
  #next = 0
  #mine = new WeakMap<SharedArrayBuffer, Entry>()
  readonly #theirs: Array<Map<number, SharedArrayBuffer>>
  #closed = false
  readonly #forget = new FinalizationRegistry<Entry>((e) => {
    if (!this.#closed) for (const peer of e.told) this.#post(peer, { t: "drop", id: e.id })
  })

  constructor(world: number, post: PostToPeer) {
    this.#post = post
    this.#theirs = Array.from({ length: world }, () => new Map())
  }

  /** The number of `buffer`, sent first to every peer in `readers` that has not seen it. */
  share(buffer: SharedArrayBuffer, readers: ReadonlyArray<number>, self: number): number {
    let e = this.#mine.get(buffer)
    if (e === undefined) {
      e = { id: this.#next++, told: new Set() }
      this.#mine.set(buffer, e)
      this.#forget.register(buffer, e)
    }
    for (const peer of readers) {
      if (peer === self || e.told.has(peer)) continue
      e.told.add(peer)
      this.#post(peer, { t: "share", id: e.id, buffer })
    }
    return e.id
  }

  /** A peer's message about its buffers. */
  receive(from: number, m: Extract<PeerMessage, { t: "share" | "drop" }>): void {
    const theirs = this.#theirs[from]
    if (theirs === undefined) return
    if (m.t === "share") theirs.set(m.id, m.buffer)
    else theirs.delete(m.id)
  }

  /** Buffer `id` of rank `owner`, or undefined while its message is still on the way. */
  lookup(owner: number, id: number): SharedArrayBuffer | undefined {
    return this.#theirs[owner]?.get(id)
  }

  /** The job ended: forget everything, tell nobody. */
  close(): void {
    this.#closed = true
    for (const m of this.#theirs) m.clear()
  }
}
