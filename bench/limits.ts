/**
 * limits: the ceilings suites divide by, measured in the same run as the suite so that a ratio
 * compares numbers taken under the same conditions (clock, noise, other load).
 *
 *   memcpyBandwidth(bytes)  native memmove between two buffers of `bytes`, counted as
 *                           read + write: 2 * bytes per copy. Two buffers of `bytes` have the
 *                           footprint of axpy's x and y of `bytes` each, so sizes line up
 *                           cache level for cache level.
 *   fmaPeak(threads)        fp32 FMA throughput of the native probe (all chains independent),
 *                           best of a few short windows.
 */
import * as Cpu from "../dist/native/Cpu.js"
import { type MeasureOptions, batchFor, gbPerSecond, measure } from "./harness.js"

/**
 * Copy bandwidth in GB/s (read + write bytes) for buffers of `bytes`, via the native copy.
 * @category constructors
 */
export const memcpyBandwidth = async (bytes: number, options: MeasureOptions = {}): Promise<number> => {
  const src = new Uint8Array(bytes).fill(1)
  // Touch dst too, so page faults of fresh memory are not timed.
  const dst = new Uint8Array(bytes).fill(2)
  const seconds = await measure(`memcpy ${bytes} B`, () => Cpu.copy(dst, src), { batch: batchFor(2 * bytes), ...options })
  return gbPerSecond(2 * bytes, seconds)
}

/**
 * fp32 GFLOP/s of `threads` threads running the FMA probe on the active ISA (see
 * Cpu.activeIsa): the best of `windows` windows of `seconds` each (defaults 3 x 0.2 s). A peak
 * is a maximum, and on a small shared machine any other process only pulls a window down.
 * @category constructors
 */
export const fmaPeak = (threads: number, seconds = 0.2, windows = 3): number => {
  let best = 0
  for (let i = 0; i < windows; i++) best = Math.max(best, Cpu.fmaPeak(seconds, threads).gflops)
  return best
}
