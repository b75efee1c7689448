/**
 * Doorbell: how the ranks of a threads job wake each other without the main thread. One
 * SharedArrayBuffer per job holds a doorbell per rank (a counter) and how many waits that rank has outstanding.
 * A rank that changed something another rank may wait for (it published its part, decided a
 * collective, finished reading an owner's part) rings the owner's doorbell: it adds 1 and, if
 * the rank sleeps, notifies it. A rank with nothing to do waits on its own doorbell with
 * Atomics.waitAsync, so its event loop stays free for its other fibers (a rank may compute
 * while its reduce-scatters are in flight), and one wait covers everything it waits for.
 *
 * No wake-up is lost: the sleeper reads its doorbell, checks its work, marks itself asleep and
 * waits for the doorbell to change from the value it read; a ring after that read changes the
 * value (the wait returns at once), and a ringer that saw no sleeper rang before the mark, hence
 * before the wait began (Atomics are sequentially consistent).
 */

// Int32 words per rank (one 64-byte line: ranks do not share lines).
const line = 16

interface WaitAsync {
  waitAsync(view: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> }
}

/**
 * Bytes of the doorbells of a job of `world` ranks.
 * @category getters
 */
export const bytesFor = (world: number): number => world * line * 4

/**
 * The doorbells of a job, seen from one thread.
 * @category models
 */
export class Doorbells {
  readonly ints: Int32Array

  constructor(buffer: SharedArrayBuffer) {
    this.ints = new Int32Array(buffer)
  }

  /** The current value of rank r's doorbell (read before checking work, then `sleep`). */
  value(rank: number): number {
    return Atomics.load(this.ints, rank * line)
  }

  /** Wakes rank r (if it sleeps) and makes its next `sleep` return at once otherwise. */
  ring(rank: number): void {
    const at = rank * line
    Atomics.add(this.ints, at, 1)
    if (Atomics.load(this.ints, at + 1) !== 0) Atomics.notify(this.ints, at)
  }

  /**
   * Calls `then` (without blocking the event loop meanwhile) once rank r's doorbell has moved
   * from `seen`. No
   * timeout here: a wait with one costs twice as much to wake (measured: 73 against 33 us per
   * two-rank barrier); deadlines are the caller's (a timer that rings).
   */
  sleep(rank: number, seen: number, then: () => void): void {
    const at = rank * line
    Atomics.add(this.ints, at + 1, 1)
    const wait = (Atomics as unknown as WaitAsync).waitAsync(this.ints, at, seen)
    const awake = () => {
      Atomics.sub(this.ints, at + 1, 1)
      then()
    }
    if (wait.async) void wait.value.then(awake)
    else queueMicrotask(awake)
  }
}
