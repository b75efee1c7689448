/**
 * RoutingFlags: `--routing-record DIR` and `--routing-replay DIR` (RoutingFiles; Megatron-Core's
 * routing replay, semantics.md 2.1.10), as RunConfig's settings and as the trainer's
 * TrainSetup.routing. The directories themselves are checked before the ranks start
 * (RoutingRecording.prepare); here only what the flags cannot be combined with.
 */
import path from "node:path"
import * as ConfigError from "../errors/ConfigError.js"
import type * as TrainSetup from "../train/TrainSetup.js"
import * as OutputPath from "./OutputPath.js"
import type * as RunConfig from "./RunConfig.js"
import { optionalText } from "./SettingKinds.js"

/**
 * The routing settings, as RunConfig's.
 * @category configuration
 */
export const routingSettings = {
  "routing-record": optionalText(
    "write each step's routing into DIR: step-N.npy, int32 [MoE layers, global batch x seq, topk], every token's experts as the router chose them (before dropping), which numpy's np.load reads; routing.json names the layers (Megatron's routing replay, RECORD)",
    "DIR",
  ),
  "routing-replay": optionalText(
    "route every MoE layer's tokens to the experts DIR's step files give (a --routing-record of any mapping, or your own .npy files of that shape): the probs come from the router's scores at them, dropping and the aux losses as usual (Megatron's REPLAY_FORWARD)",
    "DIR",
  ),
} as const

/** Whether one of two paths is the other or inside it. */
const overlap = (a: string, b: string): boolean => {
  const [x, y] = [path.resolve(a), path.resolve(b)]
  return OutputPath.isWithin(x, y) || OutputPath.isWithin(y, x)
}

/**
 * The run's routing replay and recording, or undefined with neither; throws a ConfigError for a
 * combination that cannot work.
 * @category constructors
 */
export const routingOf = (c: RunConfig.RunConfig): TrainSetup.TrainSetup["routing"] => {
  const record = c["routing-record"]
  const replay = c["routing-replay"]
  if (record === undefined && replay === undefined) return undefined
  if (record !== undefined && c.save !== undefined && overlap(record, c.save)) {
    throw ConfigError.make("routing-record", record, `shares its folder with --save ${c.save}`, "record into a directory of its own")
  }
  if (replay !== undefined && record !== undefined && overlap(record, replay)) {
    throw ConfigError.make("routing-record", record, `shares its folder with --routing-replay ${replay}`, "record into a directory of its own")
  }
  return { ...(record === undefined ? {} : { record }), ...(replay === undefined ? {} : { replay }) }
}
