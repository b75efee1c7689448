/**
 * Cli: the `pleat` command, its subcommands and its exit statuses.
 *
 * Every subcommand takes its arguments and an Io and returns an exit status, or, when it runs
 * a job, an Effect that resolves to one. A user error from anywhere (a ConfigError, or a
 * BadInput listing several) becomes one line on stderr and status 2; anything else is a bug,
 * reported with its stack and status 1. `run` serves tests (in process); `main` serves the
 * real process, where the job is the main fiber and a signal interrupts it (RunMain).
 */
import { readFileSync } from "node:fs"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Activity from "./Activity.js"
import * as BadInput from "./BadInput.js"
import * as DemoCommand from "./DemoCommand.js"
import * as DoctorCommand from "./DoctorCommand.js"
import * as ExitCode from "./ExitCode.js"
import * as ExportCommand from "./ExportCommand.js"
import * as GroupsCommand from "./GroupsCommand.js"
import * as ImportCommand from "./ImportCommand.js"
import type { Io } from "./Io.js"
import * as LaunchCommand from "./LaunchCommand.js"
import * as MoeCommand from "./MoeCommand.js"
import * as PlanCommand from "./PlanCommand.js"
import * as RoutingCommand from "./RoutingCommand.js"
import * as RunMain from "./RunMain.js"
import * as TrainCommand from "./TrainCommand.js"
import * as VerifyCommand from "./VerifyCommand.js"

type Outcome = number | Effect.Effect<number, unknown, Activity.Activity>

interface Command {
  readonly summary: string
  readonly run: (argv: ReadonlyArray<string>, io: Io) => Outcome
}

const commands: Readonly<Record<string, Command>> = {
  groups: { summary: "compute, check, explain and draw a folded parallel mapping", run: GroupsCommand.run },
  train: { summary: "train an MoE model (the built-in Mixtral-like one, a --model preset or your own) on any backend; npm start's job", run: TrainCommand.run },
  verify: { summary: "train under a mapping and on one rank; exit 0 only if they agree", run: VerifyCommand.run },
  demo: { summary: "a 16-rank folded mapping (attention tp 2 x cp 2 x dp 2 x pp 2, MoE ep 4 x edp 2) explained and drawn", run: DemoCommand.run },
  moe: { summary: "replay one rank's MoE routing case (route, drop/pad, permute)", run: MoeCommand.run },
  routing: { summary: "what a recorded routing (train --routing-record) says: loads, imbalance, agreement, a heatmap", run: RoutingCommand.run },
  doctor: { summary: "what this machine offers pleat: CPU, MPI, CUDA, cuBLAS, NCCL", run: DoctorCommand.run },
  launch: { summary: "run a pleat command as N processes on this machine under mpirun", run: LaunchCommand.run },
  plan: { summary: "choose folded mappings for a model on a cluster: memory, step time, MFU", run: PlanCommand.run },
  export: { summary: "write a checkpoint as a Hugging Face model directory (Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3 or GPT-OSS; safetensors)", run: ExportCommand.run },
  import: { summary: "a Hugging Face Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3 or GPT-OSS model as a checkpoint to train on", run: ImportCommand.run },
}

/**
 * The version of pleat, read from its package.json at run time.
 * @category configuration
 */
const version = (): string => {
  // src/cli/Cli.ts and dist/cli/Cli.js both sit two folders below the package root.
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8")
  return (JSON.parse(text) as { version: string }).version
}

/**
 * The top-level usage text.
 * @category configuration
 */
const usage = `pleat: mixture-of-experts training with five-dimensional parallelism and MoE Parallel Folding

usage: pleat <command> [flags]     (pleat <command> --help for its flags and their defaults)
       pleat --version

commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join("\n")}

exit status: 0 success, 1 internal error, 2 input that cannot work (one line names the field and the fix),
             3 trained but a checkpoint could not be saved into --save (one line says where the state went),
             130 / 143 interrupted by SIGINT / SIGTERM (one line says what was interrupted)
`

const oneLine = (text: string): string => text.replace(/\s+/g, " ").trim()

/** Maps a failure of command `name` to its status, writing its one line (or stack). */
const report =
  (name: string, io: Io) =>
  (error: unknown): number => {
    const user = BadInput.find(error)
    if (user !== undefined) {
      io.stderr(`pleat ${name}: ${oneLine(user.message)}\n`)
      return ExitCode.badInput
    }
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error)
    io.stderr(`pleat ${name}: internal error (please report): ${detail}\n`)
    return ExitCode.failure
  }

/** The command's job with every failure (not an interruption) mapped to its status. */
const reported = (name: string, io: Io, job: Effect.Effect<number, unknown, Activity.Activity>) =>
  job.pipe(Effect.catchCause((cause) => (Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : Effect.sync(() => report(name, io)(Cause.squash(cause))))))

/** Picks the command and starts it: a status, or a job still to run. */
const dispatch = (argv: ReadonlyArray<string>, io: Io): { readonly name: string; readonly outcome: Outcome } => {
  const [first, ...rest] = argv
  if (first === undefined || first === "--help" || first === "-h") {
    io.stdout(usage)
    return { name: "", outcome: ExitCode.ok }
  }
  if (first === "--version" || first === "-v") {
    io.stdout(`pleat ${version()}\n`)
    return { name: "", outcome: ExitCode.ok }
  }
  // `pleat help train` is `pleat train --help`.
  const [name, args] = first === "help" ? [rest[0], rest[0] === undefined ? [] : ["--help"]] : [first, rest]
  if (name === undefined) {
    io.stdout(usage)
    return { name: "", outcome: ExitCode.ok }
  }
  const command = commands[name]
  if (command === undefined) {
    io.stderr(`pleat: command: "${name}" is not a pleat command; fix: use one of ${Object.keys(commands).join(", ")}\n`)
    return { name, outcome: ExitCode.badInput }
  }
  try {
    const outcome = command.run(args, io)
    return { name, outcome: typeof outcome === "number" ? outcome : reported(name, io, outcome) }
  } catch (error) {
    return { name, outcome: report(name, io)(error) }
  }
}

/**
 * Runs `pleat` with `argv` (the words after the program name) in this process; returns the
 * exit status (a Promise for commands that run a job).
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number | Promise<number> => {
  const { outcome } = dispatch(argv, io)
  if (typeof outcome === "number") return outcome
  return Effect.runPromise(Effect.provideService(outcome, Activity.Activity, Activity.make()))
}

/**
 * Runs `pleat` as the process: a job runs as the main fiber, and SIGINT / SIGTERM interrupt
 * it (status 130 / 143, one line on stderr saying what was interrupted).
 * @category constructors
 */
export const main = (argv: ReadonlyArray<string>, io: Io): Promise<RunMain.Ended> => {
  const { name, outcome } = dispatch(argv, io)
  if (typeof outcome === "number") return Promise.resolve({ code: outcome })
  // A job either returns its status or was interrupted; RunMain tells them apart.
  return RunMain.run(name, outcome.pipe(Effect.catchCause(() => Effect.succeed(ExitCode.failure))), io)
}
