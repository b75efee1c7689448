/**
 * DemoCommand: `pleat demo`, a 16-rank folded mapping, explained and drawn.
 *
 * The example is semantics.md worked example A: attention tp 2 x cp 2 x dp 2 x pp 2, MoE
 * etp 1 x ep 4 x edp 2 x pp 2, so each expert-parallel group is one attention tp x cp group.
 * The picture's path (--svg, default out/fold-16.svg) is checked before anything is printed.
 * Its work takes milliseconds (16 ranks), so it shows no progress (see Progress).
 */
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as Report from "../mapping/Report.js"
import * as FoldPicture from "../viz/FoldPicture.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import * as GroupsText from "./GroupsText.js"
import type { Io } from "./Io.js"
import * as OutputPath from "./OutputPath.js"

const defaultSvg = "out/fold-16.svg"

const flags: Readonly<Record<string, Flags.FlagSpec>> = {
  svg: { kind: "string", placeholder: "FILE", help: `where to draw the picture (default ${defaultSvg})` },
  help: { kind: "boolean", help: "show this help" },
}

/**
 * Runs the demo; returns the exit status.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number => {
  const f = Flags.parse(argv, flags)
  if (Flags.bool(f, "help")) {
    io.stdout(`usage: pleat demo [--svg FILE]\n\n${Flags.usage(flags)}\n`)
    return ExitCode.ok
  }
  const file = Flags.string(f, "svg") ?? defaultSvg
  OutputPath.check("--svg", file)
  const config = ParallelConfig.make({ world: 16, tp: 2, cp: 2, pp: 2, ep: 4, etp: 1 })
  io.stdout("pleat demo: a 16-rank folded mapping (pleat groups --world 16 --tp 2 --cp 2 --pp 2 --ep 4 --etp 1)\n\n")
  io.stdout(GroupsText.render(Report.make(config), config))
  OutputPath.write(io, "--svg", file, FoldPicture.render(config))
  io.stdout(`\npicture of pipeline stage 0 (attention grid beside MoE grid): ${file}\n`)
  return ExitCode.ok
}
