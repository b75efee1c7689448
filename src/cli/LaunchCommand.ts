/**
 * LaunchCommand: `pleat launch -n N [--mpirun PATH] -- <pleat command and flags>`, a job of N
 * processes on this machine: it runs
 *
 *   mpirun -np N [--oversubscribe] [--allow-run-as-root] --bind-to none NODE MAIN <command and flags>
 *
 * where NODE is this Node (process.execPath) and MAIN this package's own entry point beside this
 * module (dist/cli/main.js; src/cli/main.ts under tsx when pleat runs from its sources). A
 * leading `pleat`, `npx pleat` or `node` with that entry point after `--` is dropped, so the issue's
 * `pleat launch -n 8 -- pleat verify --world 8 ...` runs `verify` on 8 ranks.
 *
 * The flags, and why:
 * - `--oversubscribe` when N exceeds the machine's cores: Open MPI counts one slot per physical
 *   core and otherwise refuses ("not enough slots"); ranks then share cores, which is right for
 *   tests and small jobs.
 * - `--allow-run-as-root` only when running as root (uid 0), which Open MPI otherwise refuses.
 * - `--bind-to none`: each rank runs a pool of kernel threads, which binding a rank to one core
 *   would squeeze onto it.
 * - no `--mca btl`: Open MPI already picks shared memory between processes of one machine; to
 *   force a transport, set it in the environment (OMPI_MCA_btl=self,vader), which mpirun reads.
 *
 * mpirun runs in its own process group with the ranks' stdout and stderr passed through (stdin
 * is not: ranks read nothing). The job's status comes back through a file named in the ranks'
 * environment (runtime/LaunchStatus.ts), so that a command refused on the ranks prints its one
 * line without mpirun's banner about a process that exited with a status other than 0. SIGINT, SIGTERM and SIGHUP are forwarded to it once (Open MPI stops
 * every rank on one signal, and a second one makes it give up on them), and the status is
 * mpirun's (128 + its signal if one ended it; 130 / 143 when a signal interrupted the launch).
 * Input that cannot work is refused with status 2 and one line naming the fix: no `--` or no
 * command, N not a positive integer, more processes than this machine's memory can hold (see
 * `mostProcesses`: a typo such as -n 100000 would otherwise fork until the machine runs out of
 * memory), mpirun not found, the MPI addon not built.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, realpathSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import os from "node:os"
import path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as Effect from "effect/Effect"
import * as ConfigError from "../errors/ConfigError.js"
import * as MpiAddon from "../native/MpiAddon.js"
import * as KernelMemory from "../tensor/KernelMemory.js"
import * as LaunchStatus from "../runtime/LaunchStatus.js"
import * as ProcessTuning from "../runtime/ProcessTuning.js"
import * as Activity from "./Activity.js"
import * as BadInput from "./BadInput.js"
import * as CpuInfo from "./doctor/CpuInfo.js"
import * as Mpirun from "./doctor/Mpirun.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"

/**
 * The flags of `pleat launch` (before `--`); `-n` and `-np` are `--np`, as in mpirun.
 * @category configuration
 */
const flags: Readonly<Record<string, Flags.FlagSpec>> = {
  np: { kind: "int", placeholder: "N", help: "-n N: number of processes (ranks), required" },
  mpirun: { kind: "string", placeholder: "PATH", help: "the mpirun to run (default: the first on PATH)" },
  help: { kind: "boolean", help: "show this help" },
}

/**
 * The usage text of `pleat launch`.
 * @category configuration
 */
const usage = `usage: pleat launch -n N [--mpirun PATH] -- <pleat command and flags>
       e.g. pleat launch -n 8 -- pleat verify --world 8 --tp 2 --cp 2 --pp 2 --ep 4

Runs the command as N processes on this machine under Open MPI:
  mpirun -np N [--oversubscribe] [--allow-run-as-root] --bind-to none node <pleat> <command>
--oversubscribe when N exceeds the cores, --allow-run-as-root when run as root. A leading
\`pleat\`, \`npx pleat\` or \`node dist/cli/main.js\` (this pleat's) after -- is dropped. The ranks' stdout and stderr pass through; they read no stdin.
OMPI_MCA_* variables in the environment reach mpirun (e.g. OMPI_MCA_btl=self,vader).
SIGINT / SIGTERM are forwarded to mpirun. Needs mpirun and pleat_mpi.node (pleat doctor).
N is at most what this machine's memory holds at 64 MiB a process.

${Flags.usage(flags)}

exit status: the job's (its command's on rank 0; mpirun's when a process ended otherwise: a
             signal, an abort), 2 input that cannot work (one line names the fix),
             130 / 143 interrupted by SIGINT / SIGTERM
`

/**
 * Everything that decides the mpirun command line.
 * @category models
 */
export interface LaunchPlan {
  /** Processes to start. */
  readonly processes: number
  /** The machine's cores, as Open MPI counts slots. */
  readonly cores: number
  /** Whether this process runs as root. */
  readonly root: boolean
  /** The program each rank runs and its arguments before the command: node and pleat's entry. */
  readonly program: ReadonlyArray<string>
  /** The pleat command and its flags. */
  readonly command: ReadonlyArray<string>
}

/**
 * The arguments of mpirun (after its own path) for a plan.
 * @category mapping
 */
export const mpirunArguments = (plan: LaunchPlan): ReadonlyArray<string> => [
  "-np",
  String(plan.processes),
  ...(plan.processes > plan.cores ? ["--oversubscribe"] : []),
  ...(plan.root ? ["--allow-run-as-root"] : []),
  "--bind-to",
  "none",
  ...plan.program,
  ...plan.command,
]

/** Whether `file` is this pleat's entry point: its package's dist/cli/main.js or src/cli/main.ts. */
const isOwnEntry = (file: string): boolean => {
  const own = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
  const resolve = (f: string) => {
    try {
      return realpathSync(f)
    } catch {
      return path.resolve(f)
    }
  }
  const target = resolve(file)
  return [path.join(own, "dist", "cli", "main.js"), path.join(own, "src", "cli", "main.ts")].some((entry) => target === resolve(entry))
}

/**
 * The pleat command in the words after `--`: without a leading `pleat`, `npx pleat`, or `node`
 * and this pleat's entry point (`node dist/cli/main.js`, how a checkout runs pleat).
 * @category mapping
 */
export const pleatCommand = (words: ReadonlyArray<string>): ReadonlyArray<string> => {
  if (words[0] === "pleat") return words.slice(1)
  if (words[0] === "npx" && words[1] === "pleat") return words.slice(2)
  const first = words[0]
  if (first !== undefined && (path.basename(first) === "node" || first === process.execPath) && words[1] !== undefined && isOwnEntry(words[1])) return words.slice(2)
  return words
}

/** `env NAME=VALUE... NODE FLAGS...`: the start of every rank's command. */
const tuned = (): ReadonlyArray<string> => ["env", ...ProcessTuning.environment, process.execPath, ...ProcessTuning.nodeFlags]

/**
 * What each rank runs before the command: `env` with pleat's environment, this Node with its node
 * flags (runtime/ProcessTuning.ts), and the entry point beside this module
 * (main.js when compiled; main.ts with tsx's loader when run from the sources).
 * @category configuration
 */
export const rankProgram = (): ReadonlyArray<string> => {
  const here = fileURLToPath(import.meta.url)
  if (!here.endsWith(".ts")) return [...tuned(), path.join(path.dirname(here), "main.js")]
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
  return [...tuned(), "--import", tsx, path.join(path.dirname(here), "main.ts")]
}

/**
 * Open MPI's slot count: the physical cores (from /proc/cpuinfo), at most the threads this
 * process may use (a container's CPU limit).
 * @category configuration
 */
const cores = (): number => Math.min(CpuInfo.read().physicalCores ?? Number.POSITIVE_INFINITY, os.availableParallelism())

const howTo = "write pleat launch -n N -- pleat <command> [flags]"

/** A new directory under the system's temporary one, or undefined when none can be made. */
const temporaryDirectory = (): string | undefined => {
  try {
    return mkdtempSync(path.join(os.tmpdir(), "pleat-launch-"))
  } catch {
    return undefined
  }
}

/**
 * The least memory one rank's process takes: a bare Node holds ~40 MiB, pleat's command line
 * ~90 MiB before any work (measured with /usr/bin/time), so no job of more processes than the
 * memory over this can run, whatever the command.
 * @category configuration
 */
export const processFloorBytes = 64 * 2 ** 20

/**
 * The most processes `memoryBytes` can hold at `processFloorBytes` each (at least 1).
 * @category mapping
 */
export const mostProcesses = (memoryBytes: number): number => Math.max(1, Math.floor(memoryBytes / processFloorBytes))

/** The problem with `processes` on a machine of `memoryBytes`, if any. */
export const processesProblem = (processes: number, memoryBytes: number): ConfigError.ConfigError | undefined => {
  const most = mostProcesses(memoryBytes)
  if (processes <= most) return undefined
  const gib = (memoryBytes / 2 ** 30).toFixed(1)
  return ConfigError.make(
    "--np",
    String(processes),
    `is more processes than this machine's ${gib} GiB of memory can hold (${processFloorBytes / 2 ** 20} MiB a process at the least: at most ${most})`,
    `launch at most ${most} ranks here, or run mpirun yourself with a hostfile to spread the ranks over machines`,
  )
}

/** The words before and after the first `--`. */
const split = (argv: ReadonlyArray<string>): { readonly own: ReadonlyArray<string>; readonly after: ReadonlyArray<string> | undefined } => {
  const at = argv.indexOf("--")
  return at < 0 ? { own: argv, after: undefined } : { own: argv.slice(0, at), after: argv.slice(at + 1) }
}

/** The problems of the command after `--`, if any. */
const commandProblems = (after: ReadonlyArray<string> | undefined): Array<ConfigError.ConfigError> => {
  if (after === undefined) return [ConfigError.make("--", undefined, "is missing before the pleat command to run", howTo)]
  const command = pleatCommand(after)
  if (command.length === 0) return [ConfigError.make("command", undefined, "is missing after --", howTo)]
  if (command[0] === "launch") return [ConfigError.make("command", "launch", "would launch each rank's own launch", "name the command each rank runs (train, verify, ...)")]
  return []
}

/**
 * Runs mpirun with `args` and `env`: its status, with the first signal this process gets
 * forwarded to it.
 */
const runMpirun = (mpirun: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  Effect.callback<number, Error>((resume) => {
    // Its own process group: a terminal's Ctrl-C reaches mpirun once, through us, not twice.
    const child = spawn(mpirun, args, { stdio: ["ignore", "inherit", "inherit"], detached: true, env })
    let forwarded = false
    const forward = (signal: NodeJS.Signals) => {
      if (forwarded) return
      forwarded = true
      child.kill(signal === "SIGHUP" ? "SIGTERM" : signal)
    }
    const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const
    for (const s of signals) process.on(s, forward)
    const exited = new Promise<void>((resolve) => {
      child.on("error", (error) => {
        for (const s of signals) process.off(s, forward)
        resume(Effect.fail(error))
        resolve()
      })
      child.on("exit", (code, signal) => {
        for (const s of signals) process.off(s, forward)
        resume(Effect.succeed(code ?? ExitCode.interrupted(signal ?? "SIGKILL")))
        resolve()
      })
    })
    // Interrupted (a signal, already forwarded, or the caller): mpirun stops its ranks; wait for it.
    return Effect.promise(() => {
      forward("SIGTERM")
      return exited
    })
  })

/**
 * Runs `pleat launch` with its arguments (after the word `launch`): input that cannot work
 * throws BadInput (status 2) before anything starts; otherwise the job, resolving to mpirun's
 * status.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number | Effect.Effect<number, unknown, Activity.Activity> => {
  const { own, after } = split(argv)
  const collected = Flags.collect(
    own.map((word) => (word === "-n" || word === "-np" ? "--np" : word)),
    flags,
  )
  if (Flags.bool(collected.flags, "help")) {
    io.stdout(usage)
    return ExitCode.ok
  }
  const problems = [...collected.problems, ...commandProblems(after)]
  const processes = Flags.int(collected.flags, "np")
  if (processes === undefined && !collected.problems.some((p) => p.field === "--np")) problems.push(ConfigError.make("-n", undefined, "is required", howTo))
  const tooMany = processes === undefined ? undefined : processesProblem(processes, KernelMemory.machineBytes())
  if (tooMany !== undefined) problems.push(tooMany)
  const explicit = Flags.string(collected.flags, "mpirun")
  const mpirun = Mpirun.locate(explicit, process.env.PATH)
  if (!mpirun.found) {
    if (explicit === undefined) problems.push(ConfigError.make("mpirun", undefined, "is not on PATH", `${Mpirun.installFix}, or pass --mpirun PATH`))
    else problems.push(ConfigError.make("--mpirun", explicit, `is not an mpirun (${mpirun.reason})`, `pass the path of mpirun, or ${Mpirun.installFix}`))
  }
  const mpi = MpiAddon.status()
  if (!mpi.available) problems.push(ConfigError.make("mpi", "pleat_mpi.node", `is not usable (${mpi.reason})`, `${Mpirun.installFix}; pleat doctor says what is missing`))
  BadInput.throwIfAny(problems)
  if (!mpirun.found || processes === undefined || after === undefined) return ExitCode.failure // unreachable: refused above
  const args = mpirunArguments({ processes, cores: cores(), root: process.getuid?.() === 0, program: rankProgram(), command: pleatCommand(after) })
  return Effect.gen(function* () {
    const activity = yield* Activity.Activity
    activity.set(`while mpirun ran ${processes} processes (the signal went to mpirun)`)
    io.stderr(`pleat launch: ${[mpirun.path, ...args].join(" ")}\n`)
    // The job's status comes back through a file (LaunchStatus), removed whatever happens; where
    // no temporary directory can be made, the processes exit with it themselves.
    const dir = temporaryDirectory()
    if (dir === undefined) return yield* runMpirun(mpirun.path, args, process.env)
    const file = path.join(dir, "status")
    return yield* runMpirun(mpirun.path, args, { ...process.env, [LaunchStatus.variable]: file }).pipe(
      Effect.map((status) => LaunchStatus.read(status, file)),
      Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true }))),
    )
  })
}
