import * as Effect from "effect/Effect"
import * as Deferred from "effect/Deferred"
import * as Layer from "effect/Layer"
import { parentPort } from "node:worker_threads"
import * as Comm from "../../Communicator.js"
import * as Tensor from "../../../tensor/Tensor.js"
import * as Group from "../../Group.js"
parentPort?.postMessage({ ok: Group.format(Group.world(3)), eff: Effect.runSync(Effect.succeed(Tensor.zeros([2]).size)) })
