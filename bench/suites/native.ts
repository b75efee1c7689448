/**
 * native: the CPU addon's axpy against the machine's copy bandwidth, plus the FMA reference line.
 *
 * axpy-f32 SIZE: x and y are Float32Array of SIZE bytes each; one call moves 12 bytes per
 * element (read x, read y, write y), i.e. 3 * SIZE. The limit is memcpyBandwidth(SIZE): two
 * buffers of SIZE, counted read + write (2 * SIZE per copy), the same footprint as x and y.
 * axpy does 2 FLOP per 12 bytes, so it is bandwidth-bound at every size; a ratio near or above
 * 1 means it streams as fast as the C library copies (above 1 is possible: a copy's writes go
 * to lines it never read, which can cost extra traffic that axpy, writing y in place, avoids).
 * Sizes: 64 KiB (L2-resident), 4 MiB (last-level cache), 64 MiB (DRAM).
 *
 * fma-peak: fp32 FMA GFLOP/s of the probe on all cores, with no limit: it is itself the compute
 * ceiling of this run, for reading compute-bound suites against (nothing measured bounds it).
 */
import * as Cpu from "../../dist/native/Cpu.js"
import { type BenchContext, type BenchRecord, batchFor, gbPerSecond, measure, record } from "../harness.js"
import { fmaPeak, memcpyBandwidth } from "../limits.js"

const KiB = 1024
const MiB = 1024 * KiB
const sizes: ReadonlyArray<{ readonly label: string; readonly bytes: number }> = [
  { label: "64KiB", bytes: 64 * KiB },
  { label: "4MiB", bytes: 4 * MiB },
  { label: "64MiB", bytes: 64 * MiB },
]

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const out: Array<BenchRecord> = []
  for (const { label, bytes } of sizes) {
    const n = bytes / Float32Array.BYTES_PER_ELEMENT
    const x = new Float32Array(n).fill(1)
    // y grows by 1e-3 per call: no overflow and no denormals however many calls run.
    const y = new Float32Array(n).fill(0.5)
    const name = `axpy-f32 ${label}`
    ctx.log(`${name} ...`)
    const seconds = await measure(name, () => Cpu.axpy(1e-3, x, y), { batch: batchFor(3 * bytes) })
    const limit = await memcpyBandwidth(bytes)
    out.push(record(ctx, { case: name, metric: "bandwidth", value: gbPerSecond(3 * bytes, seconds), unit: "GB/s", limit }))
  }
  const threads = Cpu.cpuFeatures().cores
  ctx.log(`fma-peak on ${threads} threads ...`)
  const peak = fmaPeak(threads)
  const metric = `throughput (${Cpu.activeIsa()}, ${threads} threads)`
  out.push(record(ctx, { case: "fma-peak", metric, value: peak, unit: "GFLOP/s" }))
  return out
}
