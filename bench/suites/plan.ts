/**
 * plan: how long `pleat plan` takes to weigh every mapping of each model preset on 16,384 GPUs
 * (dgx-h100, seq 4096, global batch 8192); the budget is 10 s (target).
 *
 * The limit is measured in the same run: validating the same (tp, cp, pp, ep, etp, order)
 * combinations with ParallelConfig.validate alone, the floor of any search that checks what it
 * lists (ratio = how many times that floor the whole plan takes, lower is better).
 */
import * as Divisors from "../../dist/mapping/Divisors.js"
import * as ParallelConfig from "../../dist/mapping/ParallelConfig.js"
import * as Cluster from "../../dist/plan/Cluster.js"
import * as Planner from "../../dist/plan/Planner.js"
import * as ModelPresets from "../../dist/train/ModelPresets.js"
import { type BenchContext, type BenchRecord, record, wallSeconds } from "../harness.js"

const gpus = 16_384

/** Validates every degree combination and both orders the planner tries; returns how many passed. */
const validateAll = (): number => {
  let valid = 0
  for (const tp of Divisors.of(gpus))
    for (const cp of Divisors.of(gpus / tp))
      for (const pp of Divisors.of(gpus / (tp * cp)))
        for (const ep of Divisors.of(gpus / pp))
          for (const etp of Divisors.of(gpus / (pp * ep)))
            for (const order of ["tp-cp-ep-dp-pp", "tp-cp-ep-pp-dp"]) if (ParallelConfig.validate({ world: gpus, tp, cp, pp, ep, etp, order })._tag === "Success") valid++
  return valid
}

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const floor = await wallSeconds(async () => validateAll(), 2)
  ctx.log(`plan: validating every combination alone takes ${floor.toFixed(2)} s`)
  const records: Array<BenchRecord> = []
  for (const name of ModelPresets.names) {
    const job = {
      modelName: name,
      model: ModelPresets.model(name, 1),
      cluster: Cluster.presets["dgx-h100"] as Cluster.Cluster,
      gpus,
      seq: 4096,
      globalBatch: 8192,
      precision: "bf16" as const,
    }
    let weighed = 0
    const seconds = await wallSeconds(async () => {
      weighed = Planner.plan(job, {}).weighed
    }, 2)
    ctx.log(`plan: ${name}: ${weighed} mappings in ${seconds.toFixed(2)} s`)
    records.push(record(ctx, { case: `${name}, ${gpus} GPUs`, metric: "plan time", value: seconds, unit: "s", limit: floor, target: 10 }))
  }
  return records
}
