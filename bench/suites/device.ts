/**
 * device: what a training step copies between host and device (issue 15), counted on the
 * simulated device (`--device sim`: every upload and download of its runtime counted, each one a
 * synchronisation on a real GPU), so the figure is the same on any machine and a change that
 * sends a tensor through the host shows here before a GPU run would.
 *
 * `pleat train --device sim` of the default model's shape, one job a case, in this process (the
 * local backend): the median over ranks and steady steps (3 to 6) of each rank's step record's
 * `hostDeviceBytes`. No limit (nothing bounds it from below but zero) and no target; the case
 * names the rank's parameter bytes, what the host's optimizer moved twice a step before the
 * optimizer moved to the device. The NCCL backend's figures need mpirun: bench/README.md has them
 * (the NCCL suite's property asserts the gap).
 */
import * as Effect from "effect/Effect"
import * as TrainOptions from "../../dist/cli/TrainOptions.js"
import * as Train from "../../dist/train/Train.js"
import { type BenchContext, type BenchRecord, record } from "../harness.js"

const steps = 6
const cases: ReadonlyArray<{ readonly name: string; readonly flags: ReadonlyArray<string> }> = [
  { name: "1 rank, fp32", flags: ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"] },
  { name: "1 rank, bf16", flags: ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--precision", "bf16"] },
  { name: "4 ranks (tp 2, ep 2), fp32", flags: ["--world", "4", "--tp", "2", "--cp", "1", "--pp", "1", "--ep", "2"] },
  { name: "2 ranks (ep 2), distributed optimizer", flags: ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "2", "--distributed-optimizer"] },
]

const median = (xs: ReadonlyArray<number>): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const out: Array<BenchRecord> = []
  for (const c of cases) {
    const resolved = TrainOptions.resolve([...c.flags, "--global-batch", "8", "--device", "sim", "--steps", String(steps)])
    if (resolved === "help") return []
    const summaries = await Effect.runPromise(Train.run(resolved.setup, { steps }))
    const steady = summaries.slice(2).flatMap((s) => s.ranks.map((r) => r.hostDeviceBytes ?? Number.NaN))
    const parameterBytes = median(summaries.flatMap((s) => s.ranks.map((r) => r.memory.parameterBytes)))
    const bytes = median(steady)
    ctx.log(`device: ${c.name}: ${(bytes / 1024).toFixed(1)} KB a rank a step (parameters ${(parameterBytes / 1024).toFixed(0)} KB a rank)`)
    out.push(
      record(ctx, {
        case: `default model on sim, ${c.name} (a rank holds ${(parameterBytes / 1024).toFixed(0)} KB of parameters)`,
        metric: "host-device bytes a rank a step",
        value: bytes / 1024,
        unit: "KB",
      }),
    )
  }
  return out
}
