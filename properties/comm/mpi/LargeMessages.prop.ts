// p2p messages longer than MPI's int count (2^31 - 1 bytes) travel as one element of a derived
// datatype of whole blocks and a rest (cuda/src/mpi/message_bytes.h). The same code runs for
// every message once PLEAT_MPI_MESSAGE_BYTES makes the block small: here a drawn block of tens to
// thousands of bytes, so the jobs themselves, their control frames and tensor messages of drawn
// sizes (a whole number of blocks, a rest, one block or less) all go through it, under mpirun
// with 4 processes, and must equal the local backend's results bit for bit. (A 2.5 GB message
// between two processes was checked by hand: the session note of 2026-12-07.)
import fc from "fast-check"
import { beforeAll, describe, expect, test } from "vitest"
import { results } from "../runOn.js"
import { missing } from "./mpirun.js"
import type { Outcome } from "./runner.js"
import { world } from "./suiteCases.js"
import { runSuite } from "./suiteRun.js"

const why = missing()
const [block] = fc.sample(fc.integer({ min: 40, max: 5000 }), 1) as [number]
const extra = [
  ...fc.sample(fc.integer({ min: 1, max: 6 }), 2).map((count) => ({ scenario: "p2pFifo" as const, args: { world, count } })),
  ...fc.sample(fc.integer({ min: 1, max: 120_000 }), 2).map((large) => ({ scenario: "p2pLargeThenSmall" as const, args: { world, large } })),
]

describe.skipIf(why !== undefined)(`p2p messages in blocks of ${block} bytes (PLEAT_MPI_MESSAGE_BYTES), 4 processes`, () => {
  let outcomes: Array<Outcome> = []
  let stderr = ""

  beforeAll(async () => {
    const run = await runSuite({
      backend: "mpi",
      faults: [],
      timesOut: [],
      faultTimeoutMs: 0,
      atOnceMs: 0,
      contract: false,
      extra,
      env: { PLEAT_MPI_MESSAGE_BYTES: String(block) },
    })
    outcomes = run.outcomes
    stderr = run.stderr
  }, 300_000)

  test("every job ran and equals the local backend's results", async () => {
    expect(outcomes.length, stderr).toBe(extra.length)
    for (const [i, c] of extra.entries()) {
      const got = outcomes[i]
      expect(got?.ok, `${c.scenario} ${JSON.stringify(c.args)}: ${got?.ok === false ? got.message : ""}`).toBe(true)
      if (got?.ok !== true) continue
      expect(got.results, `${c.scenario} ${JSON.stringify(c.args)}`).toEqual(await results("local", c.scenario, world, c.args))
    }
  })
})
