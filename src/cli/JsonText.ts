/**
 * JsonText: JSON a user wrote (a config file, a routing case), parsed with a problem a person
 * can act on.
 *
 * JSON.parse says where it stopped as a character offset, or, when the text ends too early,
 * nowhere at all. A user edits lines: so the problem names the line and column, and says when
 * the text ended early (a file cut short, a bracket never closed) or holds nothing at all. A key
 * written twice in one object is refused too (JSON.parse would keep the last value without a
 * word), and a leading byte-order mark is skipped.
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

/** A key that stands twice in one object: where its second occurrence starts. */
interface Repeated {
  readonly key: string
  readonly offset: number
}

/**
 * A plain scan of the grammar (RFC 8259): the offset of the first character that cannot
 * continue valid JSON (`text.length` when the text stops early; used where V8 names no offset),
 * or, with `repeats`, the first key that stands twice in one object (JSON.parse keeps the last
 * value silently); undefined for valid JSON without either.
 */
const scan = (text: string, repeats: boolean): number | Repeated | undefined => {
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
      const keys = new Set<string>()
      for (;;) {
        blank()
        if (text[i] !== '"') fail()
        const start = i
        string()
        const key = JSON.parse(text.slice(start, i)) as string
        if (repeats && keys.has(key)) throw { key, offset: start }
        keys.add(key)
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
    return i < text.length ? i : undefined
  } catch (at) {
    return typeof at === "number" ? Math.min(at, text.length) : (at as Repeated)
  }
}

/**
 * Parses `text`; an invalid text gives its reason with the line and column where parsing stopped.
 * @category constructors
 */
export const parse = (written: string): Parsed => {
  // A byte-order mark (Windows editors write one) is not part of the JSON.
  const text = written.startsWith("\uFEFF") ? written.slice(1) : written
  try {
    const value: unknown = JSON.parse(text)
    const repeated = scan(text, true)
    if (typeof repeated === "object") {
      return {
        _tag: "invalid",
        reason: `has the key ${JSON.stringify(repeated.key)} twice in one object (again at ${lineAndColumn(text, repeated.offset)}): say each setting once`,
      }
    }
    return { _tag: "json", value }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    if (text.trim() === "") return { _tag: "invalid", reason: "is empty, not JSON" }
    const at = /at position (\d+)/.exec(message)
    const offset = at === null && !/Unexpected end/.test(message) ? ((scan(text, false) as number | undefined) ?? text.length) : at === null ? undefined : Number(at[1])
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
