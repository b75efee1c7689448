/**
 * Cli: the `pleat` command, its subcommands and its exit statuses.
 *
 * Every subcommand takes its arguments and an Io and returns an exit status. A ConfigError from
 * anywhere becomes one line on stderr and status 2; anything else is a bug, reported with its
 * stack and status 1.
 */
import * as ConfigError from "../mapping/ConfigError.js"
import * as DemoCommand from "./DemoCommand.js"
import * as ExitCode from "./ExitCode.js"
import * as GroupsCommand from "./GroupsCommand.js"
import * as TrainCommand from "./TrainCommand.js"
import * as VerifyCommand from "./VerifyCommand.js"
import * as MoeCommand from "./MoeCommand.js"
import type { Io } from "./Io.js"

interface Command {
  readonly summary: string
  readonly run: (argv: ReadonlyArray<string>, io: Io) => number | Promise<number>
}

const commands: Readonly<Record<string, Command>> = {
  groups: { summary: "compute, check, explain and draw a folded parallel mapping", run: GroupsCommand.run },
  train: { summary: "train the Mixtral-like MoE model on local ranks (the default job)", run: TrainCommand.run },
  verify: { summary: "train under a mapping and on one rank; exit 0 only if they agree", run: VerifyCommand.run },
  demo: { summary: "the default job: a 16-rank folded example and its picture", run: DemoCommand.run },
  moe: { summary: "replay one rank's MoE routing case (route, drop/pad, permute)", run: MoeCommand.run },
}

/**
 * The top-level usage text.
 * @category configuration
 */
export const usage = `pleat: mixture-of-experts training with five-dimensional parallelism and MoE Parallel Folding

usage: pleat <command> [flags]     (pleat <command> --help for its flags)

commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join("\n")}

exit status: 0 success, 1 internal error, 2 input that cannot work (one line names the field and the fix)
`

/**
 * Runs `pleat` with `argv` (the words after the program name); returns the exit status.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number | Promise<number> => {
  const [name, ...rest] = argv
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.stdout(usage)
    return ExitCode.ok
  }
  const command = commands[name]
  if (command === undefined) {
    io.stderr(`pleat: command: "${name}" is not a pleat command; fix: use one of ${Object.keys(commands).join(", ")}\n`)
    return ExitCode.badInput
  }
  const report = (error: unknown): number => {
    if (ConfigError.isConfigError(error)) {
      io.stderr(`pleat ${name}: ${error.message}\n`)
      return ExitCode.badInput
    }
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error)
    io.stderr(`pleat ${name}: internal error (please report): ${detail}\n`)
    return ExitCode.failure
  }
  try {
    const status = command.run(rest, io)
    // Long commands (train, verify) are asynchronous; their failures map the same way.
    return typeof status === "number" ? status : status.catch(report)
  } catch (error) {
    return report(error)
  }
}
