// One run of the contract cases and some fault scenarios as jobs of one mpirun (runner.ts), on
// the MPI or the NCCL backend, and the contract's comparison with the local backend: what the
// MPI and NCCL suites share.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { expect } from "vitest"
import { results } from "../runOn.js"
import { mpirun } from "./mpirun.js"
import type { Case, Outcome } from "./runner.js"
import { contract, near, world } from "./suiteCases.js"

/**
 * The outcomes of one run: the contract cases first (unless `contract` is false), then the
 * `extra` cases, then each fault in order (`faultTimeoutMs` for a fault that is meant to time out, `atOnceMs` for the others; one
 * that times out leaves its collective behind, so nothing runs after the faults).
 */
export const runSuite = async (options: {
  readonly backend: "mpi" | "nccl"
  readonly faults: ReadonlyArray<string>
  readonly timesOut: ReadonlyArray<string>
  readonly faultTimeoutMs: number
  readonly atOnceMs: number
  readonly env?: NodeJS.ProcessEnv
  readonly extra?: ReadonlyArray<{ readonly scenario: string; readonly args: unknown }>
  readonly contract?: boolean
}): Promise<{ readonly outcomes: Array<Outcome>; readonly stderr: string }> => {
  const dir = mkdtempSync(path.join(tmpdir(), `pleat-${options.backend}-`))
  try {
    const cases: Array<Case> = [
      ...(options.contract === false ? [] : contract).map((c) => ({ scenario: c.scenario, world, args: c.args, timeoutMs: 20_000 })),
      ...(options.extra ?? []).map((c) => ({ scenario: c.scenario, world, args: c.args, timeoutMs: 20_000 })),
      ...options.faults.map((scenario) => ({ scenario, world, args: { world }, timeoutMs: options.timesOut.includes(scenario) ? options.faultTimeoutMs : options.atOnceMs })),
    ]
    writeFileSync(path.join(dir, "cases.json"), JSON.stringify(cases))
    const script = path.join(import.meta.dirname, "runner.ts")
    const ended = await mpirun(world, [script, path.join(dir, "cases.json"), path.join(dir, "out.json"), options.backend], 240_000, undefined, options.env ?? {})
    const out = path.join(dir, "out.json")
    return { outcomes: existsSync(out) ? (JSON.parse(readFileSync(out, "utf8")) as Array<Outcome>) : [], stderr: ended.stderr }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Every contract case of `outcomes` ran and equals the local backend's (sums within each case's tolerance). */
export const expectContract = async (outcomes: ReadonlyArray<Outcome>): Promise<void> => {
  for (const [i, c] of contract.entries()) {
    const got = outcomes[i]
    expect(got?.ok, `${c.scenario} ${JSON.stringify(c.args)}: ${got?.ok === false ? got.message : ""}`).toBe(true)
    if (got?.ok !== true) continue
    const local = await results(c.scenario === "zeroCopyReuse" ? "local-zero-copy" : "local", c.scenario, world, c.args)
    if (c.scenario === "p2pLargeThenSmall") for (const r of got.results as Array<{ got: Array<number>; expected: Array<number> }>) expect(r.got).toEqual(r.expected)
    if (c.sums > 0) expect(near(got.results, local, c.sums), `${c.scenario} ${JSON.stringify(c.args)}`).toBe(true)
    else expect(got.results).toEqual(local)
  }
}

/** The outcome of fault `name` (failed, as it must). */
export const faultOf = (outcomes: ReadonlyArray<Outcome>, faults: ReadonlyArray<string>, name: string) => {
  const got = outcomes[outcomes.length - faults.length + faults.indexOf(name)]
  if (got === undefined || got.ok) throw new Error(`${name}: the job was expected to fail`)
  return got
}
