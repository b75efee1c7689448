/**
 * LayerPattern: Megatron's per-layer frequency values (its moe_freq_type, which --moe-layer-freq
 * takes): an integer N (every N-th layer, from layer 0), or a Python list expression of 0s and 1s
 * built from [..] lists, + (concatenation), * (repetition by an integer, on either side) and
 * parentheses, such as DeepSeek-V3's "([0]*3+[1]*58)": one entry per layer. Megatron evaluates the
 * expression with Python's eval; here only that small grammar is read, and anything else is
 * refused naming the flag, the value and where it stopped.
 *
 * `--moe-layer-freq` becomes pleat's placement of MoE layers (ModelContext.isMoe: the first
 * --dense-first K layers dense, then every --moe-every N-th): N gives K 0, N; a list gives K its
 * leading zeros and N the distance between its ones, and must be exactly that pattern.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as ModelContext from "../model/ModelContext.js"
import type * as RunConfig from "./RunConfig.js"

/** Entries a pattern may expand to (a list far longer than any model's layers is a mistake). */
const maxEntries = 1 << 20

/**
 * The value of a frequency text: its integer, or the list its expression evaluates to; throws a
 * ConfigError naming `flag`.
 * @category constructors
 */
export const parse = (flag: string, text: string): number | ReadonlyArray<number> => {
  const trimmed = text.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed)
  const tokens = trimmed.match(/\d+|[[\](),+*]|\S/g) ?? []
  let at = 0
  const fail = (why: string): never => {
    throw ConfigError.make(
      flag,
      text,
      `is neither an integer nor a list expression of 0s and 1s (${why})`,
      `write N (every N-th layer), or a list such as "([0]*3+[1]*58)" with one entry a layer`,
    )
  }
  const peek = () => tokens[at]
  const take = (token: string) => {
    if (tokens[at] !== token) fail(tokens[at] === undefined ? `expected "${token}" at the end` : `expected "${token}" at "${tokens[at]}"`)
    at++
  }
  const integer = (): number => {
    const token = peek()
    if (token === undefined || !/^\d+$/.test(token)) return fail(token === undefined ? "expected a number at the end" : `expected a number at "${token}"`)
    at++
    return Number(token)
  }
  const repeat = (list: ReadonlyArray<number>, times: number): ReadonlyArray<number> => {
    if (list.length * times > maxEntries) fail(`more than ${maxEntries} entries`)
    return Array.from({ length: list.length * times }, (_, i) => list[i % list.length] as number)
  }
  let depth = 0
  const primary = (): ReadonlyArray<number> => {
    if (peek() === "(") {
      take("(")
      if (++depth > 64) fail("parentheses nested more than 64 deep")
      const inner = sum()
      take(")")
      depth--
      return inner
    }
    take("[")
    const entries: Array<number> = []
    while (peek() !== "]") {
      const entry = integer()
      if (entry !== 0 && entry !== 1) fail(`entry ${entry} is neither 0 nor 1`)
      entries.push(entry)
      if (peek() === ",") take(",")
      else break
    }
    take("]")
    return entries
  }
  const isInteger = (token: string | undefined) => token !== undefined && /^\d+$/.test(token)
  // A list, or an integer times a list (Python's 3*[0]).
  const factor = (): ReadonlyArray<number> => {
    if (!isInteger(peek())) return primary()
    const times = integer()
    take("*")
    return repeat(primary(), times)
  }
  const product = (): ReadonlyArray<number> => {
    let list = factor()
    while (peek() === "*") {
      take("*")
      list = repeat(list, integer())
    }
    return list
  }
  const sum = (): ReadonlyArray<number> => {
    let list = product()
    while (peek() === "+") {
      take("+")
      list = [...list, ...product()]
    }
    return list
  }
  const value = sum()
  if (at < tokens.length) fail(`unexpected "${tokens[at]}"`)
  return value
}

/**
 * A frequency value for a model of `layers` layers: its integer (positive: `integerFix` otherwise),
 * or its list with one entry a layer (`meaning` says what 1 and 0 mark); throws a ConfigError
 * naming `flag`.
 */
const valueFor = (flag: string, text: string, layers: number, meaning: string, integerFix: string): number | ReadonlyArray<number> => {
  const value = parse(flag, text)
  if (typeof value === "number") {
    if (value < 1) throw ConfigError.make(flag, text, "is not a positive integer", integerFix)
    return value
  }
  if (value.length !== layers) throw ConfigError.make(flag, text, `has ${value.length} entries for ${layers} layers`, `write one entry (${meaning}) a layer`)
  return value
}

/** Throws a ConfigError naming `flag` (`reason`, `fix`) unless `list` marks with 1 exactly the layers `marked` says. */
const mustMark = (flag: string, text: string, list: ReadonlyArray<number>, marked: (layer: number) => boolean, reason: string, fix: string): void => {
  if (list.some((x, layer) => (x === 1) !== marked(layer))) throw ConfigError.make(flag, text, reason, fix)
}

/**
 * The MoE placement a --moe-layer-freq value gives a model of `layers` layers (ModelContext.isMoe's
 * denseFirst and moeEvery), or throws a ConfigError naming `flag` for a list of another length,
 * without a 1, or not of that form.
 * @category constructors
 */
export const moePlacementOf = (flag: string, text: string, layers: number): { readonly denseFirst: number; readonly moeEvery: number } => {
  const value = valueFor(flag, text, layers, "1 MoE, 0 dense", "write N = 1 (every layer MoE), 2, 3, ...")
  if (typeof value === "number") return { denseFirst: 0, moeEvery: value }
  const first = value.indexOf(1)
  if (first < 0) throw ConfigError.make(flag, text, "has no MoE layer (no 1)", "mark the MoE layers with 1")
  const next = value.indexOf(1, first + 1)
  const placement = { denseFirst: first, moeEvery: next < 0 ? layers - first : next - first }
  mustMark(
    flag,
    text,
    value,
    (layer) => ModelContext.isMoe({ ...placement, layers }, layer),
    "is not a run of dense layers followed by every N-th layer MoE, the placements pleat builds",
    "write it as K leading 0s, then 1 every N layers (--dense-first K --moe-every N)",
  )
  return placement
}

/**
 * The --window-attn-skip-freq a value gives a model of `layers` layers (ModelContext.windowOf's N):
 * N itself, or for a list (1: the layer keeps the sliding window, 0: it attends to its whole
 * context; Megatron's list form) the N whose layers N, 2N, ... are its 0s (layers + 1 for a list of
 * 1s alone); throws a ConfigError naming `flag` for another length or a list of no such form.
 * @category constructors
 */
export const windowSkipOf = (flag: string, text: string, layers: number): number => {
  const value = valueFor(flag, text, layers, "1 windowed, 0 whole context", "write N = 1, 2, 3, ... (every N-th layer without the window)")
  if (typeof value === "number") return value
  const skip = value.indexOf(0) + 1 || layers + 1
  mustMark(
    flag,
    text,
    value,
    (layer) => ModelContext.windowOf({ slidingWindow: 1, windowAttnSkipFreq: skip, layers }, layer) !== undefined,
    "is not every N-th layer without the window, the pattern pleat builds",
    "write it as N - 1 ones then a 0, repeated (--window-attn-skip-freq N)",
  )
  return skip
}

/**
 * The --no-rope-freq a value gives a model of `layers` layers (ModelContext.usesRope's N): N itself,
 * dividing the layers as Megatron-LM requires, or for a list (Megatron's: 1 a layer without RoPE,
 * 0 with it) the N whose layers N, 2N, ... are its 1s; throws a ConfigError naming `flag` for
 * another length, a list of no such form, or an N that does not divide the layers.
 * @category constructors
 */
export const noRopeOf = (flag: string, text: string, layers: number): number => {
  const value = valueFor(flag, text, layers, "1 without RoPE, 0 with it", "write N = 1, 2, 3, ... (every N-th layer without RoPE)")
  if (typeof value === "number") {
    if (layers % value !== 0) throw ConfigError.make(flag, text, `does not divide the ${layers} layers (Megatron-LM requires it)`, "give an N that divides --num-layers, or a list")
    return value
  }
  const every = value.indexOf(1) + 1
  if (every === 0) throw ConfigError.make(flag, text, "marks no layer without RoPE (no 1)", "mark the layers without RoPE with 1, or drop the flag")
  mustMark(
    flag,
    text,
    value,
    (layer) => !ModelContext.usesRope({ noRopeFreq: every, layers }, layer),
    "is not every N-th layer without RoPE, the pattern pleat builds",
    "write it as N - 1 zeros then a 1, repeated (--no-rope-freq N)",
  )
  return every
}

/**
 * The model's MoE placement from the run's settings: --moe-layer-freq where given (then
 * --moe-every and --dense-first must not be, but a preset's are overridden), else --moe-every and
 * --dense-first.
 * @category constructors
 */
export const placementOf = (c: RunConfig.RunConfig, sources: RunConfig.Decoded["sources"]): { readonly moeEvery: number; readonly denseFirst?: number } => {
  const freq = c["moe-layer-freq"]
  if (freq === undefined) return c["dense-first"] > 0 ? { moeEvery: c["moe-every"], denseFirst: c["dense-first"] } : { moeEvery: c["moe-every"] }
  for (const key of ["moe-every", "dense-first"] as const) {
    const tag = sources[key]?._tag
    if (tag === "flag" || tag === "file")
      throw ConfigError.make("moe-layer-freq", freq, `and --${key} both place the MoE layers`, `give --moe-layer-freq alone, or --moe-every and --dense-first`)
  }
  const placement = moePlacementOf("moe-layer-freq", freq, c.layers)
  return placement.denseFirst > 0 ? placement : { moeEvery: placement.moeEvery }
}
