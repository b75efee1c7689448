/**
 * RoutingCommand: `pleat routing --dir DIR`, what a recorded routing (`pleat train
 * --routing-record DIR`, or .npy step files of one's own) says: per step and MoE layer, the
 * tokens each expert got and the imbalance (max / mean); with `--compare DIR2`, how often the
 * two routings sent a token to the same experts (RL's rollout-training mismatch, or two runs'
 * routing drifting apart); with `--svg FILE`, a heatmap of one step's loads.
 *
 * Bad input (a missing or unreadable directory, files that are not routing, two recordings of
 * different shapes, a step neither holds) throws a ConfigError naming the flag; Cli prints it as
 * one line and exits 2.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as RoutingStats from "../moe/RoutingStats.js"
import * as RoutingFiles from "../train/RoutingFiles.js"
import * as RoutingPicture from "../viz/RoutingPicture.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"
import * as OutputPath from "./OutputPath.js"

const flags: Readonly<Record<string, Flags.FlagSpec>> = {
  dir: { kind: "string", placeholder: "DIR", help: "the recording: step-N.npy files (int [MoE layers, tokens, topk]) and, when --routing-record wrote it, routing.json" },
  compare: {
    kind: "string",
    placeholder: "DIR2",
    help: "another recording of the same tokens: per layer, the share of tokens routed to the same experts, and of experts in common",
  },
  step: { kind: "int", placeholder: "N", min: 1, help: "only step N (counting from 1); the picture's step (default: the last)" },
  ep: {
    kind: "int",
    placeholder: "N",
    min: 1,
    help: "also each layer's overload at expert-parallel size N: the busiest EP rank's tokens over the mean rank's, ranks holding contiguous expert blocks",
  },
  svg: { kind: "string", placeholder: "FILE", help: "draw the step's tokens per expert, a row per MoE layer, into FILE" },
  json: { kind: "boolean", help: "one JSON object per step instead of the table" },
  help: { kind: "boolean", help: "show this help" },
}

const usage = `usage: pleat routing --dir DIR [--compare DIR2] [--step N] [--ep N] [--svg FILE] [--json]

Reads a routing recording (pleat train --routing-record DIR; Megatron-Core's router replay) and
prints, for every step and MoE layer, the tokens each expert got and the imbalance (the most
loaded expert over the mean). With --compare DIR2 (a recording of the same steps and tokens:
another run, or the routing a rollout saw), also the share of tokens routed to the same set of
experts in both and the mean share of a token's experts the two have in common. With --ep N,
also the overload at EP size N: the (token, expert) pairs of the busiest of N ranks, rank r
holding experts [r E/N, (r+1) E/N), over the mean rank's, for the step's tokens as one group
(pleat train reports the same factor per EP group and micro-batch as it trains).

${Flags.usage(flags)}

--json prints one line per step: {"step", "layers": [{"layer", "tokensPerExpert", "imbalance"
(and "same", "overlap" with --compare, "overload" with --ep)}]}.
`

/** A layer's figures in one step. */
interface LayerFigures {
  readonly layer: number
  readonly tokensPerExpert: ReadonlyArray<number>
  readonly imbalance: number
  readonly overload?: number
  readonly same?: number
  readonly overlap?: number
}

/** The first way two manifests' shapes differ, if any. */
const shapeDifference = (a: RoutingFiles.Manifest, b: RoutingFiles.Manifest): string | undefined => {
  const tokens = (m: RoutingFiles.Manifest) => m.globalBatch * m.seq
  if (a.layers.length !== b.layers.length) return `${a.layers.length} MoE layers against ${b.layers.length}`
  if (tokens(a) !== tokens(b)) return `${tokens(a)} tokens a step against ${tokens(b)}`
  if (a.topk !== b.topk) return `top-${a.topk} against top-${b.topk}`
  return undefined
}

const percent = (x: number): string => `${(100 * x).toFixed(1)}%`

/**
 * Runs `pleat routing` with its arguments (after the word `routing`); returns the exit status.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number => {
  const f = Flags.parse(argv, flags)
  if (Flags.bool(f, "help")) {
    io.stdout(usage)
    return ExitCode.ok
  }
  const dir = Flags.string(f, "dir")
  if (dir === undefined) throw ConfigError.make("--dir", undefined, "is required", "pass --dir DIR, a directory pleat train --routing-record wrote")
  const svg = Flags.string(f, "svg")
  if (svg !== undefined) OutputPath.check("--svg", svg)
  const mine = RoutingFiles.recording(dir, "--dir")
  const otherDir = Flags.string(f, "compare")
  const other = otherDir === undefined ? undefined : RoutingFiles.recording(otherDir, "--compare")
  if (other !== undefined) {
    const differs = shapeDifference(mine.manifest, other.manifest)
    if (differs !== undefined)
      throw ConfigError.make("--compare", otherDir, `is a routing of other tokens or layers (${differs})`, "compare two recordings of the same model and batch")
  }
  const shared = other === undefined ? mine.steps : mine.steps.filter((s) => other.steps.includes(s))
  const wanted = Flags.int(f, "step")
  if (wanted !== undefined && !shared.includes(wanted)) {
    throw ConfigError.make(
      "--step",
      wanted,
      `is not a step ${other === undefined ? "the recording holds" : "both recordings hold"} (${shared.length === 0 ? "none" : `${shared[0]} to ${shared[shared.length - 1]}`})`,
      "pass one of its steps",
    )
  }
  if (shared.length === 0) throw ConfigError.make("--compare", otherDir, `holds none of the steps of ${dir}`, "compare recordings of the same steps")
  const steps = wanted === undefined ? shared : [wanted]
  const m = mine.manifest
  const tokens = m.globalBatch * m.seq
  const numExperts = Math.max(m.numExperts, other?.manifest.numExperts ?? 0)
  const ep = Flags.int(f, "ep")
  if (ep !== undefined && numExperts % ep !== 0)
    throw ConfigError.make("--ep", ep, `does not divide the recording's ${numExperts} experts`, "pass an EP size that divides the experts")
  const figuresOf = (step: number): Array<LayerFigures> => {
    const a = RoutingFiles.readStep(dir, step, m, "--dir")
    const b = other === undefined || otherDir === undefined ? undefined : RoutingFiles.readStep(otherDir, step, other.manifest, "--compare")
    return m.layers.map((layer, l) => {
      const counts = RoutingStats.tokensPerExpert(a.experts, l, tokens, m.topk, numExperts)
      const agreement = b === undefined ? undefined : RoutingStats.agreement(a.experts, b.experts, l, tokens, m.topk)
      const overload = ep === undefined ? {} : { overload: RoutingStats.imbalance(RoutingStats.rankLoads(counts, ep)) }
      return { layer, tokensPerExpert: counts, imbalance: RoutingStats.imbalance(counts), ...overload, ...(agreement === undefined ? {} : agreement) }
    })
  }
  // Every step is read and checked before anything is printed.
  const figures = steps.map((step) => ({ step, layers: figuresOf(step) }))
  const json = Flags.bool(f, "json")
  if (!json) {
    io.stdout(
      `routing ${dir}: steps ${shared[0]} to ${shared[shared.length - 1]} (${shared.length}), MoE layers ${m.layers.join(", ")}, ${numExperts} experts, top-${m.topk}, ${tokens} tokens a step${other === undefined ? "" : `; compared with ${otherDir}`}\n`,
    )
  }
  for (const { step, layers } of figures) {
    if (json) {
      io.stdout(`${JSON.stringify({ step, layers })}\n`)
      continue
    }
    io.stdout(`step ${step}\n`)
    for (const l of layers) {
      const most = l.tokensPerExpert.indexOf(Math.max(...l.tokensPerExpert))
      const least = l.tokensPerExpert.indexOf(Math.min(...l.tokensPerExpert))
      const overload = l.overload === undefined ? "" : `; overload ${l.overload.toFixed(3)} at ep ${ep}`
      const compared = l.same === undefined ? "" : `; the same experts for ${percent(l.same)} of tokens, ${percent(l.overlap ?? 0)} of experts in common`
      io.stdout(
        `  layer ${l.layer}: imbalance ${l.imbalance.toFixed(3)} (expert ${most} ${l.tokensPerExpert[most]} tokens, expert ${least} ${l.tokensPerExpert[least]})${overload}${compared}\n`,
      )
    }
  }
  const last = figures[figures.length - 1]
  if (svg !== undefined && last !== undefined) {
    const title = `${dir}: step ${last.step}, tokens per expert (top-${m.topk}, ${tokens} tokens)`
    OutputPath.write(
      io,
      "--svg",
      svg,
      RoutingPicture.render(
        title,
        last.layers.map((l) => ({ layer: l.layer, counts: l.tokensPerExpert })),
      ),
    )
    ;(json ? io.stderr : io.stdout)(`picture: ${svg}\n`)
  }
  return ExitCode.ok
}
