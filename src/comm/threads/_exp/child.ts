import * as Effect from "effect/Effect"
import { parentPort } from "node:worker_threads"
import * as Group from "../../Group.js"
const x: number = 3
parentPort?.postMessage({ ok: Group.format(Group.world(x)), eff: Effect.runSync(Effect.succeed(1)) })
