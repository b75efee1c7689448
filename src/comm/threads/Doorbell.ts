/**
 * Doorbell: how the ranks of a threads job wake each other without the main thread. One
 * SharedArrayBuffer per job holds a doorbell per rank (a counter) and whether that rank sleeps,
 * then a bell per worker thread. A rank that changed something another rank may wait for (it
 * published its part, decided a collective, finished reading an owner's part) rings the
 * owner's doorbell: it adds 1 and, if the rank sleeps, wakes it. A rank with nothing to do
 * sleeps on its doorbell without blocking its event loop, so its thread's other fibers (its own
 * compute, the other ranks the worker hosts) go on, and one sleep covers everything it waits for.
 *
 * How a sleeper is woken depends on where the ringer runs. A ringer in the sleeper's own thread
 * (another rank of the same worker) calls it back directly, on the microtask queue: no system
 * call, no trip through the event loop (a collective among the ranks of one worker costs what
 * it costs on the local backend's fibers). A ringer in another thread rings the sleeper's
 * worker bell (adds 1, Atomics.notify); each thread keeps one Atomics.waitAsync on its bell
 * while any rank it hosts sleeps, and on waking calls back every sleeper whose doorbell moved.
 *
 * No wake-up is lost: the sleeper marks itself asleep, then reads its doorbell against the
 * value it saw before checking its work; a ring after that read finds the mark and rings the
 * bell. The thread reads its bell before it checks its sleepers' doorbells and waits for the
 * bell to change from that value, so a bell rung after the check ends the wait at once
 * (Atomics are sequentially consistent).
 */

import type { WaitFiller } from "../../tensor/GradAccumulator.js"

// Int32 words per rank or worker (one 64-byte line: nobody shares lines).
const line = 16

interface WaitAsync {
  waitAsync(view: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> }
}

/**
 * Bytes of the doorbells of a job of `world` ranks on `workers` worker threads.
 * @category getters
 */
export const bytesFor = (world: number, workers: number = world): number => (world + workers) * line * 4

interface Sleeper {
  readonly seen: number
  readonly then: () => void
}

/**
 * What one thread knows of a job's doorbells: the sleepers it hosts and its bell's wait. One per
 * thread and job, shared by the Doorbells of the thread's ranks (SameThread holds it: a
 * SharedArrayBuffer arrives as a new object with every message, so it cannot key the job).
 * @category models
 */
export class ThreadSide {
  readonly sleepers = new Map<number, Sleeper>()
  waiting = false
  /**
   * How long the thread polls its bell before it waits on it, in ms (0: never). Only where
   * the thread has a core of its own: a ringer in another thread then costs neither side a
   * wake-up (a system call for the ringer, an event-loop trip for this thread).
   */
  spinMs = 0
  /**
   * Told when the thread starts waiting on its bell (true: nothing of it runs, its core is free)
   * and when the wait ends (ThreadComm lends the core to the kernels' pool meanwhile).
   */
  asleep: ((sleeping: boolean) => void) | undefined = undefined
  /**
   * Work the thread does before it waits on its bell, while no doorbell of its sleepers moves
   * (ThreadComm: the queued weight-gradient products, GradAccumulator.waitFiller).
   */
  filler: WaitFiller | undefined = undefined
  /** Whether `asleep(true)` was told and `asleep(false)` not yet. */
  #lent = false

  /** The thread's wait on its bell begins (its core is lent). */
  lend(): void {
    if (this.#lent || this.asleep === undefined) return
    this.#lent = true
    this.asleep(true)
  }

  /**
   * The wait ended, or the job closes on this thread (its last rank left: a wait still pending
   * then may end after the next job has started, or never, if the worker is terminated).
   */
  reclaim(): void {
    if (!this.#lent) return
    this.#lent = false
    this.asleep?.(false)
  }
}

/**
 * The doorbells of a job, seen from one thread.
 * @category models
 */
export class Doorbells {
  readonly ints: Int32Array
  readonly #world: number
  /** The worker thread that hosts each rank. */
  readonly #hosts: ReadonlyArray<number>
  readonly #side: ThreadSide

  /** `hosts[r]` is the worker thread of rank r (0 .. workers - 1); `side`: this thread's. */
  constructor(buffer: SharedArrayBuffer, hosts: ReadonlyArray<number>, side: ThreadSide) {
    this.ints = new Int32Array(buffer)
    this.#hosts = hosts
    this.#world = this.#hosts.length
    this.#side = side
  }

  /** The current value of rank r's doorbell (read before checking work, then `sleep`). */
  value(rank: number): number {
    return Atomics.load(this.ints, rank * line)
  }

  #bell(rank: number): number {
    return (this.#world + (this.#hosts[rank] as number)) * line
  }

  /** Wakes rank r (if it sleeps) and makes its next `sleep` return at once otherwise. */
  ring(rank: number): void {
    const at = rank * line
    Atomics.add(this.ints, at, 1)
    const here = this.#side.sleepers.get(rank)
    if (here !== undefined) return this.#wake(rank, here)
    if (Atomics.load(this.ints, at + 1) === 0) return
    const bell = this.#bell(rank)
    Atomics.add(this.ints, bell, 1)
    Atomics.notify(this.ints, bell)
  }

  /** Ends the wait of rank r's thread on its bell (a job that ends leaves no wait behind). */
  release(rank: number): void {
    const bell = this.#bell(rank)
    Atomics.add(this.ints, bell, 1)
    Atomics.notify(this.ints, bell)
  }

  #wake(rank: number, sleeper: Sleeper): void {
    this.#side.sleepers.delete(rank)
    Atomics.sub(this.ints, rank * line + 1, 1)
    queueMicrotask(sleeper.then)
  }

  /**
   * Calls `then` (without blocking the event loop meanwhile) once rank r's doorbell has moved
   * from `seen`. r must be a rank this thread hosts, with no other sleep outstanding. No
   * timeout here: a wait with one costs twice as much to wake (measured: 73 against 33 us per
   * two-rank barrier); deadlines are the caller's (a timer that rings).
   */
  sleep(rank: number, seen: number, then: () => void): void {
    const at = rank * line
    Atomics.add(this.ints, at + 1, 1)
    const sleeper = { seen, then }
    if (Atomics.load(this.ints, at) !== seen) return this.#wake(rank, sleeper)
    this.#side.sleepers.set(rank, sleeper)
    this.#arm(this.#bell(rank))
  }

  /** Keeps one wait on this thread's bell while any rank of this thread sleeps. */
  #arm(bell: number): void {
    const side = this.#side
    if (side.waiting || side.sleepers.size === 0) return
    const value = Atomics.load(this.ints, bell)
    // Doorbells that moved before the bell was read: no wait for them.
    for (const [rank, sleeper] of side.sleepers) if (this.value(rank) !== sleeper.seen) this.#wake(rank, sleeper)
    if (side.sleepers.size === 0) return
    side.waiting = true
    const woken = () => {
      side.waiting = false
      for (const [rank, sleeper] of side.sleepers) if (this.value(rank) !== sleeper.seen) this.#wake(rank, sleeper)
      this.#arm(bell)
    }
    // A poll waits until the thread's other work has run (a macrotask): it never holds up a
    // fiber of this thread that can go on.
    if (side.filler?.pending() === true) setImmediate(() => this.#fill(bell, value, woken))
    else this.#idle(bell, value, woken)
  }

  /** With nothing to do: a poll of the bell, or the wait. */
  #idle(bell: number, value: number, woken: () => void): void {
    if (this.#side.spinMs > 0) setImmediate(() => this.#poll(bell, value, woken))
    else this.#wait(bell, value, woken)
  }

  /** Runs the filler's work, one piece at a time, until a sleeper's doorbell moves or none is left. */
  #fill(bell: number, value: number, woken: () => void): void {
    const filler = this.#side.filler
    for (;;) {
      if (Atomics.load(this.ints, bell) !== value || this.#moved()) return woken()
      if (filler?.pending() !== true) return this.#idle(bell, value, woken)
      filler.runOne()
    }
  }

  /** Whether a sleeper of this thread has gone or its doorbell moved. */
  #moved(): boolean {
    const side = this.#side
    if (side.sleepers.size === 0) return true
    for (const [rank, sleeper] of side.sleepers) if (this.value(rank) !== sleeper.seen) return true
    return false
  }

  #wait(bell: number, value: number, woken: () => void): void {
    const wait = (Atomics as unknown as WaitAsync).waitAsync(this.ints, bell, value)
    if (!wait.async) return queueMicrotask(woken)
    const side = this.#side
    side.lend()
    void wait.value.then(() => {
      side.reclaim()
      woken()
    })
  }

  /** Polls the bell for up to the thread's spinMs, then waits on it. */
  #poll(bell: number, value: number, woken: () => void): void {
    const end = performance.now() + this.#side.spinMs
    for (;;) {
      for (let i = 0; i < 64; i++) if (Atomics.load(this.ints, bell) !== value) return woken()
      if (performance.now() >= end) return this.#wait(bell, value, woken)
    }
  }
}
