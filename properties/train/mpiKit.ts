// What the MPI training tests share: the per-step losses of `--log json` output, the same
// training in one process (--backend local), and equality of two loss lists to 1e-12 relative
// (MPI sums in its own order, so float64 losses are equal to rounding, not bit for bit).
import { expect } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"

/** The per-step losses of `--log json` output. */
export const losses = (out: string): Array<number> =>
  out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { msg?: string; loss?: number })
    .filter((r) => r.msg === "step")
    .map((r) => r.loss as number)

/** `pleat train` with these flags in this process, on the local backend: its losses. */
export const local = async (argv: ReadonlyArray<string>): Promise<Array<number>> => {
  const io = memoryIo()
  const status = await Cli.run(["train", ...argv, "--backend", "local"], io)
  expect(status, io.err).toBe(0)
  return losses(io.out)
}

/** Two loss lists equal to 1e-12 relative. */
export const near = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): void => {
  expect(a.length).toBe(b.length)
  a.forEach((x, i) => expect(Math.abs(x - (b[i] as number))).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(x))))
}
