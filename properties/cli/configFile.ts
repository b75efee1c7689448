// Config files for the CLI tests: each in a fresh temporary directory, named job.json.
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"

/** A job.json holding `content` as written (valid JSON or not). */
export const configText = (content: string): string => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "pleat-config-")), "job.json")
  writeFileSync(file, content)
  return file
}

/** A job.json holding `values` as one JSON object. */
export const configFile = (values: Record<string, unknown>): string => configText(JSON.stringify(values))
