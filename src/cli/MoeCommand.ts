/**
 * MoeCommand: `pleat moe <subcommand>`, single-rank MoE routing tools.
 *
 *   pleat moe replay CASE.json   run one routing case (src/moe/Replay.ts) and print the result
 *   pleat moe replay -           the same, reading the case from stdin
 *
 * A case that cannot work (a missing or wrongly typed field, a key a case does not have, wrong
 * lengths, an unknown score function or drop policy, topk out of range, bad groups, non-finite
 * numbers, a result that overflows float64, an unreadable file, invalid JSON) throws a
 * ConfigError naming the field; Cli prints it as one line and exits 2.
 */
import { readFileSync } from "node:fs"
import * as ConfigError from "../errors/ConfigError.js"
import * as Replay from "../moe/Replay.js"
import * as BadInput from "./BadInput.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"
import * as JsonText from "./JsonText.js"
import * as ReplayOverflow from "./ReplayOverflow.js"

/**
 * The usage text of `pleat moe`, the case format and the edge semantics.
 * @category configuration
 */
const usage = `usage: pleat moe replay CASE.json     (CASE.json may be - for stdin)

Routes one rank's tokens as Megatron-Core's router does (top-k with a score function, group-
limited routing, expert bias, scaling), drops or pads to capacity, permutes the tokens into
expert-major order and back, and prints one JSON object. Everything is computed in float64.

case (one JSON object, every key required, null where allowed, no other key):
  numExperts E        integer >= 1
  topk K              integer, 1..E
  scoreFunction       "softmax" | "sigmoid" | "sqrtsoftplus" (sqrt(log(1 + e^x)): routes as sigmoid)
  preSoftmax          bool: softmax over all E, then top-k (probs not renormalized); false:
                      top-k on the logits, then softmax over the K (sigmoid ignores it)
  capacityFactor      number | null: capacity C = ceil(T*K/E * factor); null or < 0: dropless
  dropPolicy          "probs" (keep the largest probs) | "position" (keep the earliest tokens)
  padToCapacity       bool: pad every expert to exactly min(C, T) rows (ignored when dropless)
  numGroups           int | null   group-limited routing: E/numGroups experts per group
  groupTopk           int | null   groups kept per token (divides numGroups; both or neither;
                      topk <= groupTopk * E / numGroups)
  scalingFactor       number | null: multiplies the probs (0 or null: no scaling)
  expertBias          [E] | null: sigmoid only, shifts selection, never the probs
  logits              [T][E]
  tokens              [T][H]

output keys, in order: probs [T][E], routingMap [T][E] (0/1; both after dropping/padding),
tokensPerExpert [E], sortedIndices [N] (the token of each row), permuted [N][H],
unpermuted [T][H] (sum of each token's rows), unpermutedWeighted [T][H] (probs-weighted sum),
auxLoss (switch load-balancing loss, coefficient 1, this rank's tokens), zLoss (coefficient 1).

rows are listed expert by expert, tokens ascending within an expert. Ties in every top-k go
to the lower index (experts, groups, and tokens competing for capacity).

padding: an expert with fewer than C kept tokens is filled with the lowest-index tokens not
routed to it (for both policies); fillers have prob 0, sit at their token's position inside
the expert's rows, add their token once to unpermuted and nothing to unpermutedWeighted.
When C > T every expert gets all T tokens.

T = 0 (logits and tokens []) gives empty arrays, auxLoss 0 and zLoss 0.

numbers: every input must be finite (1e999 parses as Infinity and is refused), and so must
every result: a case that overflows float64 (logits near 1e154 square to Infinity in the
z-loss) is refused naming the input, since JSON cannot carry Infinity.

exit status: 0 success, 2 a case that cannot work (one line names the field and the fix)
`

const readCase = (file: string): string => (file === "-" ? readFileSync(0, "utf8") : readFileSync(file, "utf8"))

/** One line, whatever the message held. */
const oneLine = (text: string): string => text.replace(/\s+/g, " ").trim()

/** Each key of a case object that a case does not have, with the nearest key it may mean. */
const unknownKeys = (json: unknown): Array<ConfigError.ConfigError> => {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return []
  const known: ReadonlyArray<string> = Replay.caseKeys
  return Object.entries(json)
    .filter(([key]) => !known.includes(key))
    .map(([key, value]) => {
      const near = Flags.closest(key, known)
      const fix = near === undefined ? `use only the keys ${known.join(", ")}` : `did you mean "${near}"?`
      return ConfigError.make(key, Replay.shown(value), "is given under a key a case does not have", fix)
    })
}

/**
 * Runs `pleat moe` with `readText` as the file reader (tests pass an in-memory one).
 * @category constructors
 */
export const runWith = (argv: ReadonlyArray<string>, io: Io, readText: (file: string) => string): number => {
  const [sub, ...rest] = argv
  if (sub === "--help" || sub === "-h" || sub === "help") {
    io.stdout(usage)
    return ExitCode.ok
  }
  if (sub === undefined) throw ConfigError.make("subcommand", undefined, "is missing", "run pleat moe replay CASE.json")
  if (sub !== "replay") throw ConfigError.make("subcommand", sub, "is not a pleat moe subcommand", "use replay")
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout(usage)
    return ExitCode.ok
  }
  const flag = rest.find((a) => a.startsWith("-") && a !== "-")
  if (flag !== undefined) throw ConfigError.make("arguments", flag, "is not a flag of pleat moe replay", "pass only the case file: pleat moe replay CASE.json")
  if (rest.length !== 1) {
    throw ConfigError.make("case", rest.length === 0 ? undefined : rest.join(" "), "needs exactly one case file", "run pleat moe replay CASE.json (or - for stdin)")
  }
  const file = rest[0] as string
  let text: string
  try {
    text = readText(file)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error))
    throw ConfigError.make("case", file, `cannot be read (${oneLine(String(code))})`, "pass the path of a readable JSON case file, or - for stdin")
  }
  const parsed = JsonText.parse(text)
  if (parsed._tag === "invalid") throw ConfigError.make("case", file, parsed.reason, "write the case as one JSON object")
  BadInput.throwIfAny(unknownKeys(parsed.value))
  const c = Replay.decode(parsed.value)
  const output = Replay.run(c)
  const overflow = ReplayOverflow.problem(c, output)
  if (overflow !== undefined) throw overflow
  io.stdout(`${JSON.stringify(output)}\n`)
  return ExitCode.ok
}

/**
 * Runs `pleat moe` with its arguments (after the word `moe`); returns the exit status.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number => runWith(argv, io, readCase)
