// The contract and fault suites on the MPI backend with 4 processes: cases drawn by fast-check
// (mappings of world 4, sizes, splits) run as jobs of one mpirun (runner.ts), each compared
// with the same case on the local backend: bit for bit, except sums, which MPI reduces in its
// own order (float64 to 1e-12 relative; cases with float32 sums, whose elements then differ by
// an ulp or so, to 1e-4: their results are position-weighted checksums of up to 200,000
// elements, measured 2.5e-6 apart, while one wrong element moves them by 1e-3 or more); faults end with the same diagnosis as locally (a
// timeout names the ranks that never arrived, as the others tell it). Skipped, with a
// line saying why, where mpirun or the MPI addon is missing.
import * as Cause from "effect/Cause"
import { beforeAll, describe, expect, test } from "vitest"
import type { CommError } from "../../../src/comm/CommError.js"
import { failure, type Scenario } from "../runOn.js"
import { missing } from "./mpirun.js"
import { contract, world } from "./suiteCases.js"
import { expectContract, faultOf, runSuite } from "./suiteRun.js"

const why = missing()
if (why !== undefined) console.log(`MPI suites skipped: ${why}`)

const timeoutMs = 400
const atOnceMs = 4000
/** Fault cases, last (the one that times out leaves its collective behind, as MPI must). */
const faults = ["skips", "differentOps", "badSplits", "badReceiveBuffer", "throws", "recvNobody", "neverArrives"] as const

/** The diagnosis of a fault scenario on the local backend. */
const localFailure = async (name: string) => {
  const { error } = await failure("local", name as Scenario, world, {}, timeoutMs)
  return error === undefined ? undefined : (Cause.squash(error.cause) as CommError)
}

describe.skipIf(why !== undefined)("the MPI backend with 4 processes", () => {
  let run: Awaited<ReturnType<typeof runSuite>> = { outcomes: [], stderr: "" }

  beforeAll(async () => {
    run = await runSuite({ backend: "mpi", faults, timesOut: ["neverArrives", "recvNobody"], faultTimeoutMs: timeoutMs, atOnceMs })
  }, 300_000)

  test("every case ran (the runner wrote one outcome per case)", () => {
    expect(run.outcomes.length, run.stderr).toBe(contract.length + faults.length)
  })

  test("contract: every collective and p2p case equals the local backend's", () => expectContract(run.outcomes))

  const fault = (name: (typeof faults)[number]) => faultOf(run.outcomes, faults, name)

  test("a rank that throws: the job fails with that rank at once", () => {
    const f = fault("throws")
    expect(f.rank).toBe(2)
    expect(f.message).toContain("rank 2 failed: boom in rank 2")
    expect(f.ms).toBeLessThan(atOnceMs)
  })

  test("a skipped collective and different sizes: Mismatch naming who issued what", () => {
    const skips = fault("skips")
    expect(skips.message).toContain("Mismatch: allReduce #0 on ep#0 [0,1,2,3]")
    expect(skips.message).toContain("rank 1 issued allGather float64 [1, 2]")
    expect(skips.message).toContain("ranks 0,2,3 issued allReduce(sum) float64 [1, 2]")
    expect(skips.ms).toBeLessThan(atOnceMs)
    const different = fault("differentOps")
    expect(different.message).toContain("ranks 0,2 issued allReduce(sum) float64 [1, 2]; ranks 1,3 issued allReduce(sum) float64 [3, 2]")
  })

  test("bad arguments and a wrong receive buffer fail every member at once, as locally", () => {
    expect(fault("badSplits").message).toContain("rank 0: sendSplits add up to 4 rows but the tensor has 2")
    expect(fault("badSplits").comm?.ranks).toEqual([0])
    const buffer = fault("badReceiveBuffer")
    expect(buffer.message).toContain("BadInput: allGather #0 on ep#0 [0,1,2,3]")
    expect(buffer.message).toContain("rank 1: the receive buffer holds 6 float64 elements; the result needs 8 float64")
  })

  test("a rank that never arrives: Timeout naming it, within the timeout", async () => {
    const f = fault("neverArrives")
    expect(f.message).toContain("Timeout: allReduce #0 on ep#0 [0,1,2,3]")
    expect(f.message).toContain("arrived: [0,1,2], never arrived: [3]")
    expect(f.comm?.ranks).toEqual([3])
    expect(f.comm?.detail).toBe((await localFailure("neverArrives"))?.detail)
    expect(f.ms).toBeGreaterThanOrEqual(timeoutMs - 5)
    expect(f.ms).toBeLessThan(timeoutMs + atOnceMs)
    const recv = fault("recvNobody")
    expect(recv.message).toContain("Timeout: recv #0 on p2p 1->0")
  })
})
