// Token files and JSON log records for the CLI tests of --data and --eval-data.
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"

/** A uint16 token file of `ids`, in a fresh temporary directory. */
export const uint16File = (ids: ReadonlyArray<number>): string => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "pleat-data-")), "tokens.bin")
  const bytes = Buffer.alloc(2 * ids.length)
  ids.forEach((id, i) => bytes.writeUInt16LE(id, 2 * i))
  writeFileSync(file, bytes)
  return file
}

/** Text-like ids below 40: a fixed pseudo-random walk of `n` ids from `salt`. */
export const walk = (n: number, salt: number): Array<number> => Array.from({ length: n }, (_, i) => ((Math.imul(i + salt, 2654435761) >>> 27) + (i % 9)) % 40)

/** The `--log json` records of `out` whose msg is `msg`. */
export const records = (out: string, msg: string): Array<Record<string, number>> =>
  out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, number> & { msg?: string })
    .filter((o) => o.msg === msg)

/** The loss of every step record (`--log json`) of `out`, in order. */
export const stepLosses = (out: string): Array<number> => records(out, "step").map((r) => r.loss as number)
