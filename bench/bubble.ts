/**
 * bubble: the pipeline bubble of a real training run, read from its trace (src/runtime/Trace.ts).
 *
 * For every rank and every step span after the warm-up, the idle time is the part of the step
 * that no working span covers: forward, backward, and gradient sync + optimizer count as work;
 * the interpreter's "wait activation" / "wait gradient" spans and the gaps between spans do
 * not. The bubble is idle / step time, averaged over ranks and measured steps, the quantity the
 * 1F1B formula (P - 1) / (V*M + P - 1) predicts for equal stage times and free communication.
 */
import type * as Trace from "../dist/runtime/Trace.js"

/** Whether a compute span is work (not the interpreter's waiting for a neighbour stage). */
const isWork = (span: Trace.Span): boolean => span.category === "compute" && !span.name.startsWith("wait")

/** Milliseconds of [start, end] covered by the union of `spans` (clipped to the window). */
const covered = (spans: ReadonlyArray<Trace.Span>, start: number, end: number): number => {
  let total = 0
  let cursor = start
  for (const s of [...spans].sort((a, b) => a.start - b.start)) {
    const from = Math.max(cursor, s.start)
    const to = Math.min(end, s.end)
    if (to > from) total += to - from
    cursor = Math.max(cursor, Math.min(end, s.end))
  }
  return total
}

/**
 * Mean idle fraction of the steps of every rank in `spans`, skipping each rank's first `skip`
 * steps (warm-up). NaN when no step is left.
 * @category mapping
 */
export const idleFraction = (spans: ReadonlyArray<Trace.Span>, skip: number): number => {
  const fractions: Array<number> = []
  const ranks = [...new Set(spans.map((s) => s.rank))]
  for (const rank of ranks) {
    const mine = spans.filter((s) => s.rank === rank)
    const work = mine.filter(isWork)
    const steps = mine.filter((s) => s.category === "step").sort((a, b) => a.start - b.start)
    for (const step of steps.slice(skip)) {
      const length = step.end - step.start
      if (length <= 0) continue
      const inside = work.filter((s) => s.end > step.start && s.start < step.end)
      fractions.push(1 - covered(inside, step.start, step.end) / length)
    }
  }
  return fractions.length === 0 ? Number.NaN : fractions.reduce((a, b) => a + b, 0) / fractions.length
}
