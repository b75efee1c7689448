/**
 * SteadyStep: the step time a run sustains, for throughput a long run would see. A process
 * spends its first steps compiling and faulting in fresh memory: V8 compiles the ~2,000 small
 * ops a step of the default model issues over its first ~25 steps (each worker of the threads
 * backend its own copy), so steps 5-12 of a run of it took 188 ms on the local backend and steps
 * 25-40 110 ms (2026-12-04, 2 cores). A run's overall tokens/s (wall time over all its steps)
 * keeps that start-up in; the steady figure is the median step of the run's second half, which
 * also leaves out the odd step a collection or another process slowed.
 */

/**
 * The median of the second half of `stepSeconds` (the later ⌈n/2⌉ steps: all of them for a run
 * of one step; for an even count of them, the mean of the middle two); undefined for no steps.
 * @category getters
 */
export const steadySeconds = (stepSeconds: ReadonlyArray<number>): number | undefined => {
  if (stepSeconds.length === 0) return undefined
  const later = stepSeconds.slice(Math.floor(stepSeconds.length / 2)).sort((a, b) => a - b)
  const mid = Math.floor(later.length / 2)
  return later.length % 2 === 1 ? (later[mid] as number) : ((later[mid - 1] as number) + (later[mid] as number)) / 2
}

/**
 * The 1-based steps `steadySeconds` takes the median of, in a run of `steps` steps (`first` its
 * first step's number): for the summary line.
 * @category getters
 */
export const steadyRange = (steps: number, first = 1): { readonly from: number; readonly to: number } => ({
  from: first + Math.floor(steps / 2),
  to: first + steps - 1,
})
