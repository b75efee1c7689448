/**
 * Watchdog: the MPI transport's timeouts. Every quarter of the timeout it looks at the job's
 * running collectives; one running longer than the timeout is overdue (the transport then counts
 * the job as broken) and the other members are asked how far they got (Census: MPI itself cannot
 * tell), then it times out with a detail naming who never arrived, who did not answer, and what
 * the job's DataEngine knows of the group. A collective is asked about once.
 */
import type * as Group from "../Group.js"
import type * as Census from "./Census.js"
import type { DataEngine } from "./DataEngine.js"

/**
 * A collective the watchdog looks at: its group, sequence number and start (performance.now()).
 * @category models
 */
export interface Watched {
  readonly group: Group.Group
  readonly seq: number
  readonly started: number
}

/**
 * Watches `running` until the returned function stops it: `overdue(task)` when a task passes
 * `timeoutMs`, then `timedOut(task, detail, ranks)` once the census has answered (`ranks`: the
 * members that never arrived or did not answer).
 * @category constructors
 */
export const start = <T extends Watched>(
  running: ReadonlySet<T>,
  timeoutMs: number,
  census: Pick<Census.Census, "ask">,
  engine: Pick<DataEngine, "backend" | "diagnose"> | undefined,
  overdue: (task: T) => void,
  timedOut: (task: T, detail: string, ranks: ReadonlyArray<number>) => void,
): (() => void) => {
  const counting = new Set<T>()
  const timer = setInterval(
    () => {
      const now = performance.now()
      for (const task of running) {
        if (now - task.started < timeoutMs || counting.has(task)) continue
        overdue(task)
        counting.add(task)
        // Ask the other members how far they got, then fail naming who never arrived.
        census.ask(task.group, task.seq, Math.min(2000, Math.max(50, timeoutMs / 2)), (count) => {
          counting.delete(task)
          const silent = count.silent.length === 0 ? "" : `, did not answer: [${count.silent.join(",")}] (stuck where they cannot answer, or gone)`
          const known = engine?.diagnose(task.group)
          const engineSays = known === undefined ? "" : `; ${engine?.backend} says: ${known}`
          timedOut(
            task,
            `waited ${timeoutMs} ms; arrived: [${count.arrived.join(",")}], never arrived: [${count.missing.join(",")}]${silent} (a rank that skipped this collective, stopped, or is stuck before it)${engineSays}`,
            [...count.missing, ...count.silent],
          )
        })
      }
    },
    Math.max(1, Math.floor(timeoutMs / 4)),
  )
  timer.unref()
  return () => clearInterval(timer)
}
