// Example 04: pipeline schedules as data. Build the 1F1B and the interleaved schedules of 4
// stages and 8 micro-batches, check them for deadlocks, and compare their bubbles.
//
//   npx tsx examples/04-pipeline-schedule.ts
//
// Expected output (abridged):
//   1F1B, 4 stages, 8 micro-batches: warmup per stage [3, 2, 1, 0]
//   stage 3: F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7
//   static check: every send meets its receive (1F1B)
//   bubble 1F1B: 0.2727 (formula 0.2727)
//   bubble interleaved (vpp 2): 0.1579 (formula 0.1579)
import * as Result from "effect/Result"
import * as Action from "../src/pipeline/Action.js"
import * as Check from "../src/pipeline/Check.js"
import * as Schedule from "../src/pipeline/Schedule.js"
import * as Simulate from "../src/pipeline/Simulate.js"

const pp = 4
const microBatches = 8
const oneF = Schedule.oneFOneB(pp, microBatches)
console.log(`1F1B, ${pp} stages, ${microBatches} micro-batches: warmup per stage [${oneF.phases.map((p) => p.warmup).join(", ")}]`)
oneF.ranks.forEach((actions, stage) => {
  const computes = Action.computes(actions).map((a) => `${a._tag === "forward" ? "F" : "B"}${a.microBatch}`)
  console.log(`stage ${stage}: ${computes.join(" ")}`)
})

const checked = Check.check(oneF)
console.log(Result.isSuccess(checked) ? "static check: every send meets its receive (1F1B)" : `static check failed: ${Check.format(checked.failure)}`)

const interleaved = Schedule.interleaved(pp, 2, microBatches)
for (const [name, schedule, vpp] of [
  ["1F1B", oneF, 1],
  ["interleaved (vpp 2)", interleaved, 2],
] as const) {
  const timeline = Simulate.simulate(schedule, { forwardTime: 1, backwardTime: 2 })
  if (Result.isSuccess(timeline)) {
    console.log(`bubble ${name}: ${timeline.success.bubble.toFixed(4)} (formula ${Simulate.bubbleFraction(pp, vpp, microBatches).toFixed(4)})`)
  }
}
