/**
 * GroupsCommand: `pleat groups`, compute, validate, explain and draw a folded mapping.
 *
 * What it prints lists every rank (the table, every group of every family), so its size grows
 * with the world: above `maxListedWorld` ranks the output would take seconds and gigabytes, and
 * the command refuses the world instead (exit 2, naming the limit). The --svg file is checked
 * before any work (OutputPath). From `progressFromWorld` ranks on, the work takes around a
 * second, so its phases (computing the groups, drawing, formatting) show progress on stderr:
 * a bar on a terminal, one line per phase on a pipe; stdout is the same with or without it.
 */
import * as Result from "effect/Result"
import * as ConfigError from "../errors/ConfigError.js"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as Report from "../mapping/Report.js"
import * as FoldPicture from "../viz/FoldPicture.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import * as GroupsText from "./GroupsText.js"
import type { Io } from "./Io.js"
import * as OutputPath from "./OutputPath.js"
import * as Progress from "./Progress.js"

/**
 * The largest world `pleat groups` lists: 2^16 ranks print 12 MB of JSON with about 220 MB of
 * memory, in a second or two; 2^22, the largest world pleat lays out, took 84 s and 4.7 GB.
 * @category configuration
 */
const maxListedWorld = 1 << 16

/**
 * The smallest world whose phases show progress: 2^14 ranks take about 0.3 s here (computing,
 * formatting), 2^16 about 0.7 s, 1.4 s with --svg; a slower machine takes longer.
 * @category configuration
 */
const progressFromWorld = 1 << 14

/**
 * The flags of `pleat groups`.
 * @category configuration
 */
const flags: Readonly<Record<string, Flags.FlagSpec>> = {
  world: { kind: "int", placeholder: "W", help: "number of ranks (required)" },
  tp: { kind: "int", placeholder: "T", help: "attention tensor-parallel size (default 1)" },
  cp: { kind: "int", placeholder: "C", help: "context-parallel size (default 1)" },
  pp: { kind: "int", placeholder: "P", help: "pipeline-parallel size (default 1)" },
  ep: { kind: "int", placeholder: "E", help: "expert-parallel size (default 1)" },
  etp: { kind: "int", placeholder: "X", help: "expert tensor-parallel size (default: tp, said in every output)" },
  vpp: { kind: "int", placeholder: "V", help: "virtual pipeline stages per rank (needs pp > 1)" },
  order: { kind: "string", placeholder: "O", help: "axis order, leftmost fastest (default tp-cp-ep-dp-pp)" },
  json: { kind: "boolean", help: "print the mapping as JSON" },
  svg: { kind: "string", placeholder: "FILE", help: "draw pipeline stage 0 of both grids into FILE" },
  help: { kind: "boolean", help: "show this help" },
}

/**
 * The usage text of `pleat groups`.
 * @category configuration
 */
const usage = `usage: pleat groups --world W [--tp T] [--cp C] [--pp P] [--ep E] [--etp X] [--vpp V] [--order O] [--json] [--svg FILE]

Computes the rank groups of MoE Parallel Folding: attention on tp x cp x dp x pp, MoE on
etp x ep x edp x pp over the same ranks and pipeline groups (dp and edp are derived).
Lists every rank, so W is at most ${maxListedWorld}.

${Flags.usage(flags)}
`

/**
 * Runs `pleat groups` with its arguments (after the word `groups`); returns the exit status.
 * Bad input throws a ConfigError, which the caller prints as one line with status 2.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number => {
  const f = Flags.parse(argv, flags)
  if (Flags.bool(f, "help")) {
    io.stdout(usage)
    return ExitCode.ok
  }
  const svgFile = Flags.string(f, "svg")
  if (svgFile !== undefined) OutputPath.check("--svg", svgFile)
  const validated = ParallelConfig.validate({
    world: Flags.int(f, "world"),
    tp: Flags.int(f, "tp"),
    cp: Flags.int(f, "cp"),
    pp: Flags.int(f, "pp"),
    ep: Flags.int(f, "ep"),
    etp: Flags.int(f, "etp"),
    vpp: Flags.int(f, "vpp"),
    order: Flags.string(f, "order"),
  })
  if (Result.isFailure(validated)) throw validated.failure
  const config = validated.success
  if (config.world > maxListedWorld) {
    throw ConfigError.make(
      "world",
      config.world,
      `is more ranks than pleat groups lists (at most ${maxListedWorld}: it prints every rank, and larger worlds take from seconds to minutes and up to gigabytes of memory)`,
      `use a world of at most ${maxListedWorld}; the same degrees on a smaller world show the same pattern`,
    )
  }
  const json = Flags.bool(f, "json")
  const phases = [`computing the groups of ${config.world} ranks`, ...(svgFile === undefined ? [] : [`drawing ${svgFile}`]), json ? "formatting the JSON" : "formatting the table"]
  const progress = config.world >= progressFromWorld ? Progress.make(phases.length, 0, Progress.toStderr(io), 1, "phase") : undefined
  let phase = 0
  const next = () => progress?.update(phase, phases[phase++] ?? "")
  next()
  const report = Report.make(config)
  if (svgFile !== undefined) {
    next()
    OutputPath.write(io, "--svg", svgFile, FoldPicture.render(config))
  }
  next()
  const text = json ? `${JSON.stringify(report)}\n` : GroupsText.render(report, config)
  progress?.update(phase, "done")
  progress?.clear()
  io.stdout(text)
  // Keep stdout pure JSON; say where the picture went on stderr.
  if (svgFile !== undefined) (json ? io.stderr : io.stdout)(`picture: ${svgFile}\n`)
  return ExitCode.ok
}
