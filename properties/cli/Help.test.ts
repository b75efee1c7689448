// The habits of the ecosystem: `-h` and `--help` on every command and subcommand (status 0,
// usage on stdout, nothing on stderr), `pleat help COMMAND`, and `pleat --version` printing
// the version of package.json.
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import { pleatMain } from "../support/pleatProcess.js"

const root = path.resolve(import.meta.dirname, "../..")

const helped = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  expect(status, `${argv.join(" ")}: ${io.err}`).toBe(0)
  expect(io.err).toBe("")
  return io.out
}

const commands: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
  [[], "usage: pleat <command>"],
  [["groups"], "usage: pleat groups"],
  [["train"], "usage: pleat train"],
  [["verify"], "usage: pleat verify"],
  [["demo"], "usage: pleat demo"],
  [["moe"], "usage: pleat moe replay"],
  [["moe", "replay"], "usage: pleat moe replay"],
]

describe("help", () => {
  test("-h and --help on every command and subcommand", async () => {
    for (const [words, heading] of commands) {
      for (const flag of ["-h", "--help"]) expect(await helped([...words, flag]), `${words.join(" ")} ${flag}`).toContain(heading)
    }
  })

  test("help lists each flag of the command with its default; pleat help COMMAND is COMMAND --help", async () => {
    const groups = await helped(["groups", "--help"])
    for (const flag of ["--world W", "--tp T", "--etp X", "--json", "-h, --help"]) expect(groups).toContain(flag)
    expect(groups).toContain("(default 1)")
    expect(await helped(["demo", "-h"])).toContain("(default out/fold-16.svg)")
    expect(await helped(["help", "train"])).toBe(await helped(["train", "--help"]))
    expect(await helped(["verify", "--help"])).toContain("--kv-heads N")
    // Help wins over other flags, as `--help` does in most tools.
    expect(await helped(["train", "--steps", "3", "-h"])).toContain("usage: pleat train")
  })
})

describe("--version", () => {
  const version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version

  test("prints the package version in process and as a program", async () => {
    expect(await helped(["--version"])).toBe(`pleat ${version}\n`)
    const r = spawnSync(process.execPath, [pleatMain, "--version"], { cwd: root, encoding: "utf8" })
    expect(r.status).toBe(0)
    expect(r.stdout).toBe(`pleat ${version}\n`)
  })
})
