/**
 * JsonFile: a JSON object read from a file a user named on the command line (`--config`,
 * `pleat plan --model FILE.json`), or the ConfigError that says why it is not one.
 */
import { readFileSync } from "node:fs"
import * as ConfigError from "../errors/ConfigError.js"
import * as JsonText from "./JsonText.js"

/**
 * The object in `file`, or a ConfigError naming `field` (the flag), the file and the fix;
 * `holds` says what the file should hold ("the settings as one JSON object, e.g. ...").
 * @category constructors
 */
export const readObject = (field: string, file: string, holds: string): Record<string, unknown> | ConfigError.ConfigError => {
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable"
    return ConfigError.make(field, file, `cannot be read (${code})`, "pass the path of a readable JSON file")
  }
  const fix = `write ${holds}`
  const parsed = JsonText.parse(text)
  if (parsed._tag === "invalid") return ConfigError.make(field, file, parsed.reason, fix)
  const kind = JsonText.kindOf(parsed.value)
  if (kind !== "an object") return ConfigError.make(field, file, `holds ${kind}, not a JSON object`, fix)
  return parsed.value as Record<string, unknown>
}
