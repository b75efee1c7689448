// Fault tests, run unchanged against every backend (runOn.ts): a failing rank, a skipped
// collective, disagreeing ops, a rank that never arrives, bad arguments, a receive buffer of the
// wrong size, ops left waiting, a recv nobody answers. Each ends the job within the timeout with
// an error naming the rank and the group, the same diagnosis on every backend, and nothing keeps
// running afterwards (on threads: no rank thread is left). Faults only threads can have (a
// worker that exits or spins, a module that does not load) are in threads/Faults.prop.ts.
import * as Cause from "effect/Cause"
import { afterAll, describe, expect, test } from "vitest"
import type { CommError } from "../../src/comm/CommError.js"
import type { RankFailed } from "../../src/runtime/JobError.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"
import { backends, failure } from "./runOn.js"

// A short timeout where the timeout is what is tested; a long one where the point is that the
// job ends at once, without waiting for any timeout (loose enough for a loaded 2-core machine).
const timeoutMs = 300
const atOnceMs = 4000

// Which member reports first is a race (and with it the reporting rank, and BadInput for the
// culprit against Mismatch for the others); the rest of the diagnosis is not.
const diagnosis = (e: RankFailed | undefined) => {
  const error = e === undefined ? undefined : (Cause.squash(e.cause) as CommError)
  return error === undefined ? undefined : { group: error.group, op: error.op, seq: error.seq, ranks: error.ranks, detail: error.detail }
}

afterAll(() => ThreadsJob.shutdown())

for (const backend of backends) {
  const fails = (name: Parameters<typeof failure>[1], world = 4, args: Record<string, unknown> = {}, timeout = timeoutMs) => failure(backend, name, world, args, timeout)
  const local = async (name: Parameters<typeof failure>[1], world = 4) => (await failure("local", name, world, {}, timeoutMs)).error

  describe(`faults end the job with a diagnosis (${backend})`, () => {
    test("a rank that throws: the job fails with that rank at once; no thread is left", async () => {
      const { error, ms, live } = await fails("throws", 4, {}, atOnceMs)
      expect(error?._tag).toBe("RankFailed")
      expect(error?.rank).toBe(2)
      expect(error?.message).toContain("rank 2 failed: boom in rank 2")
      expect(ms).toBeLessThan(atOnceMs)
      expect(live).toEqual([])
    })

    test("a rank that skips a collective: Mismatch at the next one, naming ranks and group", async () => {
      const { error, ms, live } = await fails("skips", 4, {}, atOnceMs)
      // Which op the message leads with depends on who arrived first; the diagnosis does not.
      expect(error?.message).toMatch(/Mismatch: all(Reduce|Gather) #0 on ep#0 \[0,1,2,3\]/)
      expect(error?.message).toContain("rank 1 issued allGather")
      expect(error?.message).toMatch(/issued allReduce\(sum\) float64 \[1, 2\]/)
      expect(ms).toBeLessThan(atOnceMs)
      expect(live).toEqual([])
    })

    test("ranks that issue different sizes: Mismatch listing who issued what", async () => {
      const { error, live } = await fails("differentOps")
      expect(error?.message).toMatch(/ranks? [0-9,]+ issued allReduce\(sum\) float64 \[1, 2\]/)
      expect(error?.message).toMatch(/ranks? [0-9,]+ issued allReduce\(sum\) float64 \[3, 2\]/)
      expect(live).toEqual([])
    })

    test("a rank that never arrives: Timeout naming the missing rank, within the timeout", async () => {
      const { error, ms, live } = await fails("neverArrives")
      expect(error?.message).toContain("Timeout: allReduce #0 on ep#0 [0,1,2,3]")
      expect(error?.message).toContain("arrived: [0,1,2], never arrived: [3]")
      expect(diagnosis(error)).toEqual(diagnosis(await local("neverArrives")))
      expect(ms).toBeGreaterThanOrEqual(timeoutMs - 5)
      expect(ms).toBeLessThan(timeoutMs + atOnceMs)
      expect(live).toEqual([])
    })

    test("bad arguments of one rank fail every member at once", async () => {
      const { error, live } = await fails("badSplits")
      expect(error?.message).toContain("rank 0: sendSplits add up to 4 rows but the tensor has 2")
      expect(diagnosis(error)).toEqual(diagnosis(await local("badSplits")))
      expect(live).toEqual([])
    })

    test("a chunked allToAllV whose recvSplits disagree with what is sent fails, naming the ranks", async () => {
      const { error, ms, live } = await fails("chunkedMismatch", 4, {}, atOnceMs)
      expect(error?.message).toContain("Mismatch: allToAllV #0 on ep#0 [0,1,2,3]")
      expect(error?.message).toMatch(/rank 0 expects 2 rows .*from rank 1/)
      expect(ms).toBeLessThan(atOnceMs)
      expect(live).toEqual([])
    })

    test("bad chunked arguments of one rank fail every member at once, rank 0 naming its recvSplits", async () => {
      const { error, ms, live } = await fails("chunkedBadArgs", 4, {}, atOnceMs)
      expect(error?.message).toContain("allToAllV #0 on ep#0 [0,1,2,3]")
      expect(error?.message).toMatch(/rank 0: (recvSplits has 7 entries for 4 members \(2 chunks for each of 4 members\)|sendSplits has 0 entries for 4 members)/)
      expect(ms).toBeLessThan(atOnceMs)
      expect(live).toEqual([])
    })

    test("a combine index naming a token outside the result fails every member at once, naming it", async () => {
      const { error, ms, live } = await fails("combineBadIndex", 4, { world: 4 }, atOnceMs)
      expect(error?.message).toContain("allToAllV #0 on ep#0 [0,1,2,3]")
      // Where the transport lowers the combine (threads), the others see rank 0's refused entry.
      expect(error?.message).toMatch(/rank 0: (combine\.index\[1\] = 5 is not a row of the 2 tokens|sendSplits has 0 entries for 4 members)/)
      expect(ms).toBeLessThan(atOnceMs)
      expect(live).toEqual([])
    })

    test("a receive buffer of the wrong size fails the whole collective", async () => {
      const { error } = await fails("badReceiveBuffer")
      expect(error?.message).toContain("BadInput: allGather #0 on ep#0 [0,1,2,3]")
      expect(error?.message).toContain("rank 1: the receive buffer holds 6 float64 elements; the result needs 8 float64")
      expect(diagnosis(error)).toEqual(diagnosis(await local("badReceiveBuffer")))
    })

    test("ops still waiting when the job fails fail with Closed", async () => {
      const seen = new SharedArrayBuffer(4 * 4)
      const { error, live } = await fails("closedSeen", 4, { seen })
      expect(error?.rank).toBe(0)
      // Waiting ranks write what they saw before the job returns on threads; locally they are
      // interrupted with the job, after the fabric closed.
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(Array.from(new Int32Array(seen))).toEqual([0, 1, 1, 1])
      expect(live).toEqual([])
    })

    test("nothing keeps running after the job fails", async () => {
      const ticks = new SharedArrayBuffer(4)
      const { error, live } = await fails("ticker", 2, { ticks })
      expect(error?.message).toContain("rank 0 failed: rank 0 gives up")
      const after = Atomics.load(new Int32Array(ticks), 0)
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(Atomics.load(new Int32Array(ticks), 0)).toBe(after)
      expect(after).toBeGreaterThan(0)
      expect(live).toEqual([])
    })

    test("a recv that nobody answers times out naming the peer", async () => {
      const { error } = await fails("recvNobody", 2)
      expect(error?.message).toContain("Timeout: recv #0 on p2p 1->0")
      expect(error?.message).toBe((await local("recvNobody", 2))?.message)
    })
  })
}
