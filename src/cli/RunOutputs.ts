/**
 * RunOutputs: what `pleat train` and `pleat verify` will write (the checkpoints of --save, the
 * trace of --trace), checked before the run starts, each problem a ConfigError naming the flag.
 *
 * --save: a new path, an empty folder or one --save wrote (saving prunes old checkpoints, so
 * never a folder of someone else's files), in a place a folder can be created. --trace: a file
 * in a writable place, not the --save directory or a folder above it (the trace is written
 * after the last save: it would fail on the folder after a whole run), and not a file the run
 * reads (--config, --data, --eval-data, --definition's module), which it would overwrite.
 */
import { existsSync, statSync } from "node:fs"
import path from "node:path"
import * as ConfigError from "../errors/ConfigError.js"
import * as CheckpointDirectory from "../train/CheckpointDirectory.js"
import * as OutputPath from "./OutputPath.js"

const saveProblem = (target: string): ConfigError.ConfigError | undefined => {
  if (existsSync(target)) {
    if (!statSync(target).isDirectory()) return ConfigError.make("save", target, "is a file, not a checkpoint directory", "pass a new directory, or one written by --save")
    if (!CheckpointDirectory.mayWrite(target)) {
      return ConfigError.make(
        "save",
        target,
        `is a folder pleat did not write (it holds files and no ${CheckpointDirectory.marker} marker)`,
        "pass a new or empty directory, or one written by --save",
      )
    }
  }
  return OutputPath.placeProblem("save", target, "folder")
}

/**
 * The problems of a run's outputs (none given: none), in the order of the flags. `inputs` are
 * the files the run reads, by flag (--config, --data, ...): the trace never overwrites one.
 * @category guards
 */
export const problems = (
  save: string | undefined,
  trace: string | undefined,
  inputs: ReadonlyArray<readonly [string, string | undefined]> = [],
): ReadonlyArray<ConfigError.ConfigError> => {
  const found: Array<ConfigError.ConfigError> = []
  const saving = save === undefined ? undefined : saveProblem(save)
  if (saving !== undefined) found.push(saving)
  const tracing = trace === undefined ? undefined : OutputPath.fileProblem("trace", trace)
  if (tracing !== undefined) found.push(tracing)
  else if (trace !== undefined && save !== undefined && OutputPath.isWithin(path.resolve(save), path.resolve(trace))) {
    found.push(ConfigError.make("trace", trace, `is the --save directory ${save} or a folder above it`, "write the trace to a file of its own, e.g. trace.json"))
  } else if (trace !== undefined) {
    const read = OutputPath.inputProblem("trace", trace, inputs)
    if (read !== undefined) found.push(read)
  }
  return found
}
