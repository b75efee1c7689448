import * as Effect from "effect/Effect"
import { parentPort } from "node:worker_threads"
parentPort.postMessage({ eff: Effect.runSync(Effect.succeed(1)) })
