/**
 * mapping: how fast pleat computes every group family and the rank table of a large world.
 *
 * Case: world 65,536 (tp 8, cp 2, pp 16, ep 64, etp 1), every family of `pleat groups`.
 * The limit is a native memcpy of the same output bytes (the family lists as int32), measured in
 * the same run: no layout can be written faster than it can be copied. Rows:
 *   - families: output GB/s vs memcpy GB/s (ratio = fraction of copy speed reached);
 *   - families, rank table: ns per rank vs memcpy ns for that rank's share of the output
 *     (ratio = how many times slower than copying the result; lower is better).
 */
import * as Families from "../../dist/mapping/Families.js"
import * as Folding from "../../dist/mapping/Folding.js"
import * as ParallelConfig from "../../dist/mapping/ParallelConfig.js"
import { type BenchContext, type BenchRecord, gbPerSecond, measure, record } from "../harness.js"
import { memcpyBandwidth } from "../limits.js"

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const input = { world: 65_536, tp: 8, cp: 2, pp: 16, ep: 64, etp: 1 }
  const label = `world 65536 tp8 cp2 pp16 ep64 etp1`
  const config = ParallelConfig.make(input)
  const families = Families.all(config)
  let entries = 0
  for (const name of Families.familyNames) for (const g of families[name]) entries += g.length
  const bytes = entries * 4
  ctx.log(`mapping: ${Families.familyNames.length} families, ${entries} entries (${(bytes / 2 ** 20).toFixed(1)} MiB as int32)`)

  const familiesSeconds = await measure("families", () => void Families.all(ParallelConfig.make(input)), { time: 1500, warmupTime: 300 })
  const fold = Folding.make(config)
  const placesSeconds = await measure("places", () => void Folding.places(fold), { time: 1500, warmupTime: 300 })
  const copy = await memcpyBandwidth(bytes)
  // Bandwidth counts read + write; writing the output once is half of that traffic per byte.
  const copySecondsPerRank = (2 * bytes) / (copy * 1e9) / input.world
  const tableBytes = input.world * 8 * 4
  const tableCopySecondsPerRank = (2 * tableBytes) / (copy * 1e9) / input.world

  ctx.log(`mapping: families ${(familiesSeconds * 1e3).toFixed(1)} ms, rank table ${(placesSeconds * 1e3).toFixed(1)} ms`)
  return [
    record(ctx, { case: `all families, ${label}`, metric: "output bandwidth", value: gbPerSecond(2 * bytes, familiesSeconds), unit: "GB/s", limit: copy }),
    record(ctx, { case: `all families, ${label}`, metric: "time per rank", value: (familiesSeconds / input.world) * 1e9, unit: "ns", limit: copySecondsPerRank * 1e9 }),
    record(ctx, { case: `rank table, ${label}`, metric: "time per rank", value: (placesSeconds / input.world) * 1e9, unit: "ns", limit: tableCopySecondsPerRank * 1e9 }),
  ]
}
