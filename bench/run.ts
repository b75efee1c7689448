/**
 * run: the bench runner. `npm run bench -- SUITE [--json]` imports bench/suites/SUITE.ts, runs
 * its default export and prints the records: a table with the machine it ran on, or with
 * `--json` one JSON object per line (keys suite, case, metric, value, unit, limit, target, ratio;
 * null where a row has no limit or target) and nothing else on stdout. Progress goes to stderr.
 *
 * Exit codes: 0 done, 1 the suite failed, 2 bad command line (unknown suite or flag).
 */
import { readFileSync, readdirSync } from "node:fs"
import os from "node:os"
import { fileURLToPath } from "node:url"
import * as ProcessTuning from "../dist/runtime/ProcessTuning.js"
import { type BenchContext, type BenchRecord, type Suite, toJsonLine } from "./harness.js"

const suitesDir = fileURLToPath(new URL("./suites/", import.meta.url))

const availableSuites = (): Array<string> =>
  readdirSync(suitesDir)
    .filter((file) => file.endsWith(".ts") && !file.endsWith(".d.ts"))
    .map((file) => file.slice(0, -".ts".length))
    .sort()

const usage = (): string => `usage: npm run bench -- SUITE [--json]\navailable suites: ${availableSuites().join(", ")}\n`

interface Args {
  readonly suite: string
  readonly json: boolean
}

// Returns the parsed arguments, or the message to print before exiting with 2.
const parseArgs = (argv: ReadonlyArray<string>): Args | { readonly error: string } => {
  let json = false
  const positional: Array<string> = []
  for (const arg of argv) {
    if (arg === "--json") json = true
    else if (arg === "--help" || arg === "-h") return { error: usage() }
    else if (arg.startsWith("-")) return { error: `unknown option ${arg}\n${usage()}` }
    else positional.push(arg)
  }
  const [suite, ...extra] = positional
  if (suite === undefined) return { error: usage() }
  if (extra.length > 0) return { error: `one suite at a time, got ${positional.join(" ")}\n${usage()}` }
  if (!availableSuites().includes(suite)) {
    return { error: `unknown suite "${suite}"; available suites: ${availableSuites().join(", ")}\n` }
  }
  return { suite, json }
}

/**
 * CPU model with family/model numbers (the "model name" of a VM is often just "AMD EPYC"),
 * cores, Node version, OS. From /proc/cpuinfo where it exists, else os.cpus().
 */
const machine = (): string => {
  let model = os.cpus()[0]?.model ?? "unknown cpu"
  try {
    const lines = readFileSync("/proc/cpuinfo", "utf8").split("\n")
    const field = (key: string) =>
      lines
        .find((l) => l.startsWith(key))
        ?.split(":")[1]
        ?.trim() ?? ""
    const name = field("model name")
    if (name !== "") model = name
    if (field("cpu family") !== "") model += ` (family ${field("cpu family")}, model ${field("model\t")})`
  } catch {
    // Not Linux: keep os.cpus()'s model.
  }
  return `${model}, ${os.availableParallelism()} cores, node ${process.version}, ${os.platform()} ${os.arch()}, node flags ${ProcessTuning.active() ? ProcessTuning.nodeFlags.join(" ") : "none"}, GLIBC_TUNABLES ${process.env.GLIBC_TUNABLES || "unset"}`
}

const format = (v: number | null): string => {
  if (v === null) return "-"
  if (!Number.isFinite(v)) return String(v)
  const abs = Math.abs(v)
  return abs >= 100 ? v.toFixed(1) : abs >= 1 ? v.toFixed(2) : v.toFixed(3)
}

const table = (suite: string, records: ReadonlyArray<BenchRecord>): string => {
  const header = ["case", "metric", "value", "unit", "limit", "target", "ratio"]
  const rows = records.map((r) => [r.case, r.metric, format(r.value), r.unit, format(r.limit), format(r.target), format(r.ratio)])
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => (row[c] ?? "").length)))
  // Text columns left-aligned, numbers right-aligned.
  const numeric = new Set([2, 4, 5, 6])
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((cell, c) => (numeric.has(c) ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0)))
      .join("  ")
      .trimEnd()
  const rule = widths.map((w) => "-".repeat(w)).join("  ")
  return [`suite ${suite}`, `machine: ${machine()}`, "", line(header), rule, ...rows.map(line), ""].join("\n")
}

const isSuite = (value: unknown): value is Suite => typeof value === "function"

const main = async (): Promise<number> => {
  const args = parseArgs(process.argv.slice(2))
  if ("error" in args) {
    process.stderr.write(args.error)
    return 2
  }
  const module: { readonly default?: unknown } = await import(`./suites/${args.suite}.ts`)
  if (!isSuite(module.default)) {
    process.stderr.write(`bench/suites/${args.suite}.ts has no default export function (ctx) => Promise<BenchRecord[]>\n`)
    return 1
  }
  const ctx: BenchContext = { suite: args.suite, json: args.json, log: (m) => process.stderr.write(`${m}\n`) }
  const started = performance.now()
  const records = await module.default(ctx)
  ctx.log(`suite ${args.suite}: ${records.length} records in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  process.stdout.write(args.json ? records.map((r) => `${toJsonLine(r)}\n`).join("") : table(args.suite, records))
  return 0
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exitCode = 1
  },
)
