// The child process of CheckpointCrash.prop.ts: `pleat train`'s flags resolved as the CLI
// resolves them, then the training run with its save, and nothing else of the CLI (so that it
// starts fast: the compiled modules of dist/, which the tests' global setup builds from src/).
// With PLEAT_CRASH_AT=n it dies at the n-th step of the save protocol.
import * as Effect from "effect/Effect"
import * as TrainOptions from "../../dist/cli/TrainOptions.js"
import * as Train from "../../dist/train/Train.js"

const r = TrainOptions.resolve(process.argv.slice(2))
if (r === "help") throw new Error("no --help here")
await Effect.runPromise(
  Train.run(r.setup, {
    steps: r.steps,
    keep: r.keep,
    ...(r.save === undefined ? {} : { save: r.save }),
    ...(r.resume === undefined ? {} : { resume: r.resume }),
    ...(r.saveEvery === undefined ? {} : { saveEvery: r.saveEvery }),
  }),
)
