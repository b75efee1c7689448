/**
 * JsonText: JSON a user wrote (a config file, a routing case), parsed with a problem a person
 * can act on.
 *
 * JSON.parse says where it stopped as a character offset, or, when the text ends too early,
 * nowhere at all. A user edits lines: so the problem names the line and column, and says when
 * the text ended early (a file cut short, a bracket never closed) or holds nothing at all.
 */

/**
 * The parsed value, or why the text is not JSON.
 * @category models
 */
export type Parsed = { readonly _tag: "json"; readonly value: unknown } | { readonly _tag: "invalid"; readonly reason: string }

/** Line and column (both from 1) of a character offset. */
const lineAndColumn = (text: string, offset: number): string => {
  const before = text.slice(0, offset)
  const line = before.split("\n").length
  const column = offset - (before.lastIndexOf("\n") + 1) + 1
  return `line ${line}, column ${column}`
}

/** V8's reason without its offset or its echo of the text (both said better here). */
const plainReason = (message: string): string =>
  message
    .replace(/\s*\(line \d+ column \d+\)/, "")
    .replace(/\s*(in JSON )?at position \d+/, "")
    .replace(/,\s*(\.\.\.)?".*("|\.\.\.) is not valid JSON$/s, "")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/^[A-Z](?=[a-z])/, (c) => c.toLowerCase())

/**
 * The offset of the first character that cannot continue valid JSON, by a plain scan of the
 * grammar (RFC 8259); `text.length` when the text stops early. Used where V8 names no offset.
 */
const firstBadOffset = (text: string): number => {
  let i = 0
  const fail = (at = i): never => {
    throw at
  }
  const blank = () => {
    while (i < text.length && " \t\n\r".includes(text[i] as string)) i++
  }
  const literal = (word: string) => {
    for (const c of word)
      if (text[i] === c) i++
      else fail()
  }
  const string = () => {
    i++ // the opening quote
    while (i < text.length && text[i] !== '"') {
      const c = text.charCodeAt(i)
      if (c < 0x20) fail()
      if (text[i] === "\\") {
        i++
        if (text[i] === "u") {
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? "")) fail(i + k)
          i += 4
        } else if (!'"\\/bfnrt'.includes(text[i] ?? "x")) fail()
      }
      i++
    }
    if (i >= text.length) fail()
    i++
  }
  const number = () => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i))
    if (m === null || m[0] === "" || m[0] === "-") fail()
    i += (m as RegExpExecArray)[0].length
  }
  const value = (): void => {
    blank()
    const c = text[i]
    if (c === "{") {
      i++
      blank()
      if (text[i] === "}") return void i++
      for (;;) {
        blank()
        if (text[i] !== '"') fail()
        string()
        blank()
        if (text[i] !== ":") fail()
        i++
        value()
        blank()
        if (text[i] === "}") return void i++
        if (text[i] !== ",") fail()
        i++
      }
    }
    if (c === "[") {
      i++
      blank()
      if (text[i] === "]") return void i++
      for (;;) {
        value()
        blank()
        if (text[i] === "]") return void i++
        if (text[i] !== ",") fail()
        i++
      }
    }
    if (c === '"') return string()
    if (c === "t") return literal("true")
    if (c === "f") return literal("false")
    if (c === "n") return literal("null")
    return number()
  }
  try {
    value()
    blank()
    return i
  } catch (at) {
    return Math.min(at as number, text.length)
  }
}

/**
 * Parses `text`; an invalid text gives its reason with the line and column where parsing stopped.
 * @category constructors
 */
export const parse = (text: string): Parsed => {
  try {
    return { _tag: "json", value: JSON.parse(text) }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    if (text.trim() === "") return { _tag: "invalid", reason: "is empty, not JSON" }
    const at = /at position (\d+)/.exec(message)
    const offset = at === null && !/Unexpected end/.test(message) ? firstBadOffset(text) : at === null ? undefined : Number(at[1])
    const reason = plainReason(message)
    // Offsets past the last non-blank character, or none (V8's "Unexpected end"), mean the text
    // stopped before the JSON did.
    const end = text.trimEnd().length
    if (offset === undefined || offset >= end) {
      return { _tag: "invalid", reason: `is not valid JSON: it ends early at ${lineAndColumn(text, end)} (${reason}; is it cut short, or a bracket left open?)` }
    }
    return { _tag: "invalid", reason: `is not valid JSON at ${lineAndColumn(text, offset)}: ${reason}` }
  }
}

/**
 * How a parsed value that should be an object is described: its JSON type, shortened.
 * @category mapping
 */
export const kindOf = (value: unknown): string => {
  if (value === null) return "null"
  if (Array.isArray(value)) return "an array"
  if (typeof value === "object") return "an object"
  return `a ${typeof value} (${String(JSON.stringify(value)).slice(0, 20)})`
}
