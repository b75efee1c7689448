// The check every "bad input" CLI test makes: the command fails before any work, synchronously,
// with status 2, nothing on stdout and one line on stderr that is not a stack trace.
import { expect } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"

/** Runs a command that must be refused; returns its one line. */
export const refused = (argv: ReadonlyArray<string>): string => {
  const io = memoryIo()
  const status = Cli.run(argv, io)
  expect(status, `${argv.join(" ")} -> ${io.err}`).toBe(2)
  expect(io.out).toBe("")
  expect(io.err.endsWith("\n")).toBe(true)
  expect(io.err.trimEnd().split("\n"), io.err).toHaveLength(1)
  expect(io.err).not.toMatch(/\bat .*\.(ts|js):\d+/)
  return io.err.trimEnd()
}
