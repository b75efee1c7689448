// The NCCL backend with 4 processes under mpirun, on pleat's host stand-in for NCCL
// (cuda/src/testing/host_nccl.h: NCCL's entry points over MPI on host memory, loaded through
// PLEAT_NCCL_LIB exactly as libnccl.so.2 is on a GPU machine): the contract cases of the MPI
// suite, each compared with the same case on the local backend (sums in the library's order,
// within each case's tolerance; everything else bit for bit) with the backend's default host
// checks (fixed-size collectives straight to NCCL, planned from each member's own signature),
// and, with PLEAT_DISTRIBUTED_DEBUG=DETAIL, faults that the signatures' exchange over MPI catches
// before any NCCL call. What runs: NCCL's loading, the id broadcast
// and ncclCommInitRank per group, every plan of NcclPlan through the native executor
// (cuda/src/nccl/nccl_plan.cc), the streams' completion back to Effect. What needs a GPU (the
// staging through device memory, real NCCL) runs in scripts/device-check. Skipped, with a
// line saying why, without mpirun, the CUDA addon or the stand-in.
import fc from "fast-check"
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Cli from "../../../src/cli/Cli.js"
import { memoryIo } from "../../../src/cli/Io.js"
import path from "node:path"
import { beforeAll, describe, expect, test } from "vitest"
import * as Addon from "../../../src/native/Addon.js"
import { local, losses, near as nearLosses } from "../../train/mpiKit.js"
import { missing, mpirun } from "./mpirun.js"
import { results } from "../runOn.js"
import { combinedArgs, contract, mappings, near, world } from "./suiteCases.js"
import { expectContract, faultOf, runSuite } from "./suiteRun.js"
import { pleatMain } from "../../support/pleatProcess.js"

const standIn = path.join(import.meta.dirname, "../../../build/Release/libpleat_host_nccl.so")
const why =
  missing() ??
  (Addon.isBuilt("pleat_cuda") ? undefined : "pleat_cuda.node is not built (no nvcc at install time)") ??
  (existsSync(standIn) ? undefined : `the host stand-in for NCCL is not built (${standIn}; it needs MPI)`)
if (why !== undefined) console.log(`NCCL suite skipped: ${why}`)

/** Device-resident collectives (residentScenarios.ts), on mappings of world 4. */
const resident = fc
  .sample(fc.record({ mapping: mappings, c: fc.integer({ min: 1, max: 5 }), pattern: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 6 }) }), 2)
  .map((args) => ({ scenario: "residentCollectives", args }))
/** Device-resident chunked exchanges with gathered send rows and sums onto tokens (combineScenarios.ts: ChunkedLowering on the device). */
const residentCombined = fc
  .sample(
    combinedArgs(fc.integer({ min: 1, max: 9 })).map((args) => ({ ...args, resident: true })),
    6,
  )
  .map((args) => ({ scenario: "combinedAllToAll", args }))
/** P2p of device-resident and host tensors mixed on two tags (residentScenarios.ts): the resident ones on NCCL links. */
const message = fc.record({
  rows: fc.integer({ min: 0, max: 40 }),
  dtype: fc.constantFrom("float32" as const, "float64" as const),
  resident: fc.boolean(),
  tag: fc.constantFrom("a" as const, "b" as const),
})
const residentP2p = fc
  .sample(fc.array(message, { minLength: 1, maxLength: 8 }), 3)
  .map((messages) => ({ scenario: "residentP2p", args: { world, messages: [{ rows: 2, dtype: "float32" as const, resident: true, tag: "a" as const }, ...messages] } }))
interface Resident {
  readonly resident: Array<boolean>
  readonly moved: number
  readonly values: Array<Array<number>>
  readonly recvSplits: Array<number>
}

const atOnceMs = 4000
const timeoutMs = 400
/** Faults the host agreement catches before NCCL is called (PLEAT_DISTRIBUTED_DEBUG=DETAIL); the timeout last (its collective is left behind). */
const faults = ["differentOps", "badSplits", "throws", "neverArrives"] as const
/** A fixed-size mismatch under the default checks, which NCCL is given before the verdict (the same shape, another reduction: NCCL completes). */
const alongside = ["differentReduce"] as const

describe.skipIf(why !== undefined)("the NCCL backend with 4 processes (host stand-in)", () => {
  let run: Awaited<ReturnType<typeof runSuite>> = { outcomes: [], stderr: "" }
  let checked: Awaited<ReturnType<typeof runSuite>> = { outcomes: [], stderr: "" }

  beforeAll(async () => {
    // The contract and device cases with the backend's default checks (the fixed-size
    // collectives go straight to NCCL), the faults with every collective checked on the host.
    const common = { backend: "nccl" as const, timesOut: ["neverArrives"], faultTimeoutMs: timeoutMs, atOnceMs }
    run = await runSuite({ ...common, faults: alongside, env: { PLEAT_NCCL_LIB: standIn }, extra: [...resident, ...residentCombined, ...residentP2p] })
    checked = await runSuite({ ...common, faults, env: { PLEAT_NCCL_LIB: standIn, PLEAT_DISTRIBUTED_DEBUG: "DETAIL" }, contract: false })
  }, 300_000)

  test("every case ran (the runner wrote one outcome per case)", () => {
    expect(run.outcomes.length, run.stderr).toBe(contract.length + resident.length + residentCombined.length + residentP2p.length + alongside.length)
    expect(checked.outcomes.length, checked.stderr).toBe(faults.length)
  })

  test("collectives on device-resident tensors: the local backend's values, results resident, nothing through the host", async () => {
    for (const [i, c] of resident.entries()) {
      const got = run.outcomes[contract.length + i]
      expect(got?.ok, `${JSON.stringify(c.args)}: ${got?.ok === false ? got.message : ""}`).toBe(true)
      if (got?.ok !== true) continue
      const mine = got.results as Array<Resident>
      const local = await results<Resident>("local", "residentCollectives", world, c.args)
      expect(
        near(
          mine.map((r) => r.values),
          local.map((r) => r.values),
          1e-6,
        ),
        JSON.stringify(c.args),
      ).toBe(true)
      expect(mine.map((r) => r.recvSplits)).toEqual(local.map((r) => r.recvSplits))
      for (const r of mine) {
        expect(r.resident).toEqual([true, true, true, true, true, true])
        expect(r.moved).toBe(0)
      }
      // The local backend reads the host's copies: the same program does move values there.
      expect(local.some((r) => r.resident.includes(false))).toBe(true)
    }
  })

  test("chunked exchanges of device-resident rows (gathered send rows, sums onto tokens, weighted sums): the local backend's bits, results resident, nothing through the host but the weights", async () => {
    for (const [i, c] of residentCombined.entries()) {
      const got = run.outcomes[contract.length + resident.length + i]
      expect(got?.ok, `${JSON.stringify(c.args)}: ${got?.ok === false ? got.message : ""}`).toBe(true)
      if (got?.ok !== true) continue
      const mine = got.results as Array<{ stayed: Array<boolean>; moved: number } & Record<string, unknown>>
      const local = await results<Record<string, unknown>>("local", "combinedAllToAll", world, c.args)
      const values = (r: Record<string, unknown>) => ({ plain: r.plain, combined: r.combined, weighted: r.weighted, shape: r.shape, splits: r.splits })
      expect(mine.map(values), JSON.stringify(c.args)).toEqual(local.map(values))
      for (const r of mine) expect({ stayed: r.stayed, moved: r.moved }).toEqual({ stayed: [true, true, true], moved: 0 })
    }
  })

  test("p2p of device-resident tensors on NCCL links, host tensors (and one to itself) as MPI frames, mixed on two tags: the local backend's messages in the order sent, the resident ones received resident, nothing through the host", async () => {
    for (const [i, c] of residentP2p.entries()) {
      const got = run.outcomes[contract.length + resident.length + residentCombined.length + i]
      expect(got?.ok, `${JSON.stringify(c.args)}: ${got?.ok === false ? got.message : ""}`).toBe(true)
      if (got?.ok !== true) continue
      type Received = { index: number; resident: boolean; dtype: string; shape: Array<number>; values: Array<number> }
      const mine = got.results as Array<{ moved: number; self: Array<number>; received: Array<Received> }>
      const local = await results<{ self: Array<number>; received: Array<Received> }>("local", "residentP2p", world, c.args)
      expect(mine.map((r) => r.self)).toEqual(local.map((r) => r.self))
      const sent = ({ index, dtype, shape, values }: Received) => ({ index, dtype, shape, values })
      expect(
        mine.map((r) => r.received.map(sent)),
        JSON.stringify(c.args),
      ).toEqual(local.map((r) => r.received.map(sent)))
      const messages = c.args.messages
      for (const r of mine) {
        expect(r.moved).toBe(0)
        for (const m of r.received) {
          const declared = messages[m.index] as (typeof messages)[number]
          expect(m.resident, JSON.stringify(declared)).toBe(declared.resident && declared.rows > 0)
        }
      }
    }
  })

  test("contract: every collective and p2p case equals the local backend's", () => expectContract(run.outcomes))

  const fault = (name: (typeof faults)[number]) => faultOf(checked.outcomes, faults, name)

  test("PLEAT_DISTRIBUTED_DEBUG=DETAIL: mismatched collectives and bad arguments fail every member at once on the host, as on MPI", () => {
    expect(fault("differentOps").message).toContain("ranks 0,2 issued allReduce(sum) float64 [1, 2]; ranks 1,3 issued allReduce(sum) float64 [3, 2]")
    expect(fault("badSplits").message).toContain("rank 0: sendSplits add up to 4 rows but the tensor has 2")
    expect(fault("throws").message).toContain("rank 2 failed: boom in rank 2")
    for (const name of ["differentOps", "badSplits", "throws"] as const) expect(fault(name).ms).toBeLessThan(atOnceMs)
  })

  test("by default a mismatched fixed-size collective, given to NCCL before its verdict, still fails every member at once naming both sides", () => {
    const f = faultOf(run.outcomes, alongside, "differentReduce")
    expect(f.message).toContain("ranks 0,2 issued allReduce(sum) float64 [1, 2]; ranks 1,3 issued allReduce(max) float64 [1, 2]")
    expect(f.ms).toBeLessThan(atOnceMs)
  })

  test("a rank that never arrives: Timeout naming it, within the timeout, as on MPI", () => {
    const f = fault("neverArrives")
    expect(f.message).toContain("Timeout: allReduce #0 on ep#0 [0,1,2,3]")
    expect(f.message).toContain("arrived: [0,1,2], never arrived: [3]")
    expect(f.comm?.ranks).toEqual([3])
    expect(f.ms).toBeLessThan(timeoutMs + atOnceMs)
  })

  test("pleat train --backend nccl on 4 processes: the losses of one process (float64, sums to 1e-12)", async () => {
    const flags = [...small(), "--dtype", "float64", "--seed", "29"]
    const run = await trainOnNccl(flags)
    nearLosses(losses(run.stdout), await local([...flags, ...mapping]))
  }, 300_000)

  test("pleat train --backend nccl --device sim on 4 processes: one process's losses, and the gradients summed in device memory", async () => {
    const { run, io } = await againstLocal([...small(), "--seed", "31", "--device", "sim"], mapping)
    // Every gradient here is shared (dp 2, edp 2): the local backend sums host copies of them, each
    // rank's gradient bytes down and up again a step at least; on NCCL they stay on the device.
    const gradientBytes = (summaryOf(io.out).memory as Array<{ gradientBytes: number }>).map((m) => m.gradientBytes)
    const [viaNccl, viaHost] = [hostDeviceBytes(run.stdout), hostDeviceBytes(io.out)]
    expect(viaNccl.length).toBe(3)
    viaNccl.forEach((step, k) => step.forEach((bytes, r) => expect(bytes + 2 * (gradientBytes[r] as number)).toBeLessThanOrEqual(viaHost[k]?.[r] as number)))
    // And no copy in a step blocks the JS thread (the local backend's collectives read host copies: they do).
    expect(hostWaits(run.stdout)).toEqual([0, 0, 0].map(() => [0, 0, 0, 0]))
    expect(hostWaits(io.out).every((step) => step.every((n) => n > 0))).toBe(true)
  }, 300_000)

  test("pleat train --backend nccl --device sim --distributed-optimizer on 4 processes: one process's losses; the reduce-scatters, the update and the all-gathers in device memory", async () => {
    const { run, io } = await againstLocal([...small(), "--seed", "41", "--device", "sim", "--distributed-optimizer"], mapping)
    // After the first step (the shards and parts go up once), a rank moves less than its
    // parameters a step: the host's optimizer would move them up and their gradients down.
    const parameterBytes = (summaryOf(io.out).memory as Array<{ parameterBytes: number }>).map((m) => m.parameterBytes)
    for (const step of hostDeviceBytes(run.stdout).slice(1)) step.forEach((bytes, r) => expect(bytes).toBeLessThan(parameterBytes[r] as number))
    // The global norm's squares come down without blocking, as everything else a step reads.
    expect(hostWaits(run.stdout)).toEqual([0, 0, 0].map(() => [0, 0, 0, 0]))
  }, 300_000)

  test("the same with 2 instances (--distributed-optimizer-instances 2, dp 4): the all-reduces across the instances in device memory too", async () => {
    const on = ["--world", "4", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "2", "--etp", "1"]
    const { run, io } = await againstLocal([...small(), "--seed", "47", "--device", "sim", "--distributed-optimizer", "--distributed-optimizer-instances", "2"], on)
    const parameterBytes = (summaryOf(io.out).memory as Array<{ parameterBytes: number }>).map((m) => m.parameterBytes)
    for (const step of hostDeviceBytes(run.stdout).slice(1)) step.forEach((bytes, r) => expect(bytes).toBeLessThan(parameterBytes[r] as number))
    expect(hostWaits(run.stdout)).toEqual([0, 0, 0].map(() => [0, 0, 0, 0]))
  }, 300_000)

  test("pleat train --backend nccl --device sim --precision bf16 with pp 2 (p2p, the tied embedding's sum): one process's losses", async () => {
    await againstLocal([...small(4), "--seed", "37", "--device", "sim", "--precision", "bf16"], ["--world", "4", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "2"])
  }, 300_000)

  test("pleat train --backend nccl --device sim with pp 2 and vpp 2 on 2 processes: one process's losses; the messages between the stages go device to device, both ways", async () => {
    const flags = [...small(4, 8), "--seed", "43", "--device", "sim", "--untie-embeddings"]
    const on = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--vpp", "2", "--ep", "1"]
    const { run } = await againstLocal(flags, on)
    // Nothing else is shared between the two stages (untied embeddings, dp 1): on the MPI backend
    // (a process per rank, so each rank's own count) each rank's outgoing messages come down to
    // the host (interleaved, each rank sends at least two a micro-batch: 8 micro-batches of seq 8 x
    // hidden 16 float32); NCCL's links leave them on the device.
    const viaMpi = await mpirun(2, [pleatMain, "train", ...flags, ...on, "--backend", "mpi"], 240_000)
    expect(viaMpi.code, viaMpi.stderr).toBe(0)
    const messages = 8 * 2 * (8 * 16 * 4)
    const [viaNccl, viaHost] = [hostDeviceBytes(run.stdout), hostDeviceBytes(viaMpi.stdout)]
    expect(viaNccl.length).toBe(3)
    viaNccl.forEach((step, k) => step.forEach((bytes, r) => expect(bytes + messages).toBeLessThanOrEqual(viaHost[k]?.[r] as number)))
    // Nothing blocks: a stage's backward starts from the received gradient itself (no sum of it on the host).
    expect(hostWaits(run.stdout)).toEqual([0, 0, 0].map(() => [0, 0]))
  }, 300_000)
})

describe.skipIf(why !== undefined)("NCCL links on 2 processes: set-up beside collectives in flight, and a link nobody joins", () => {
  test("a link opened while 4 collectives wait (libuv's pool size) is made and carries its message; a resident message never received ends the processes by MPI_Abort naming the waiting work, in bounded time, the job's result standing", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-links-"))
    const [cases, out] = [path.join(dir, "cases.json"), path.join(dir, "out.json")]
    writeFileSync(
      cases,
      JSON.stringify([
        { scenario: "collectivesInFlightThenLink", world: 2, args: { n: 4 }, timeoutMs: 20_000 },
        { scenario: "unmatchedResidentSend", world: 2, args: {}, timeoutMs: 5000 },
      ]),
    )
    const run = await mpirun(2, [path.join(import.meta.dirname, "runner.ts"), cases, out, "nccl"], 90_000, undefined, { PLEAT_NCCL_LIB: standIn })
    const sent = Array.from(Float32Array.from({ length: 64 }, (_, i) => ((i * 104729) % 1000) / 100 - 5))
    expect(JSON.parse(readFileSync(out, "utf8")), run.stderr).toMatchObject([
      { ok: true, results: ["sent", sent] },
      { ok: true, results: ["sent", "returned without receiving"] },
    ])
    expect(run.code).not.toBe(0)
    expect(run.stderr).toContain("still waiting for a peer")
    expect(run.ms).toBeLessThan(60_000)
  }, 120_000)
})

/** The training runs' model and mapping (world 4: tp 2, ep 2, so dp 2 and edp 2). */
const small = (layers = 2, globalBatch = 8) => ["--layers", String(layers), "--hidden", "16", "--seq", "8", "--global-batch", String(globalBatch), "--log", "json", "--steps", "3"]
const mapping = ["--world", "4", "--tp", "2", "--cp", "1", "--pp", "1", "--ep", "2"]

/** `pleat train` with these flags on a mapping (default the one above), under mpirun on the NCCL backend (exit 0 expected). */
const trainOnNccl = async (flags: ReadonlyArray<string>, on: ReadonlyArray<string> = mapping) => {
  const processes = Number(on[on.indexOf("--world") + 1])
  const run = await mpirun(processes, [pleatMain, "train", ...flags, ...on, "--backend", "nccl"], 240_000, undefined, { PLEAT_NCCL_LIB: standIn })
  expect(run.code, run.stderr).toBe(0)
  return run
}

/** The same float32 training on NCCL under mpirun and in one process: the losses within 1e-5 (the stand-in sums in its own order). */
const againstLocal = async (flags: ReadonlyArray<string>, on: ReadonlyArray<string>) => {
  const run = await trainOnNccl(flags, on)
  const io = memoryIo()
  expect(await Cli.run(["train", ...flags, ...on, "--backend", "local"], io), io.err).toBe(0)
  const [mine, theirs] = [losses(run.stdout), losses(io.out)]
  expect(mine.length).toBe(3)
  mine.forEach((x, i) => expect(Math.abs(x - (theirs[i] as number))).toBeLessThanOrEqual(1e-5 * Math.abs(x)))
  return { run, io }
}

const records = (out: string) =>
  out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
const summaryOf = (out: string) => records(out).find((r) => r.msg === "summary") as Record<string, unknown>
const hostDeviceBytes = (out: string) => records(out).flatMap((r) => (r.msg === "step" ? [r.hostDeviceBytes as Array<number>] : []))
const hostWaits = (out: string) => records(out).flatMap((r) => (r.msg === "step" ? [r.hostWaits as Array<number>] : []))

test("--backend nccl where NCCL cannot be opened: exit 2, one line naming the file and the fix", async () => {
  const io = memoryIo()
  const before = process.env.PLEAT_NCCL_LIB
  process.env.PLEAT_NCCL_LIB = import.meta.filename // a file that is not a library
  try {
    const status = await Cli.run(["train", "--backend", "nccl", "--world", "1", "--steps", "1"], io)
    expect(status).toBe(2)
    expect(io.err.trim().split("\n")).toHaveLength(1)
    expect(io.err).toContain("--backend")
    expect(io.err).toMatch(Addon.isBuilt("pleat_cuda") ? /NcclSuite\.prop\.ts.*(does not load|cannot load)|invalid ELF/ : /needs the CUDA addon/)
  } finally {
    if (before === undefined) delete process.env.PLEAT_NCCL_LIB
    else process.env.PLEAT_NCCL_LIB = before
  }
})

test("PLEAT_DISTRIBUTED_DEBUG other than OFF or DETAIL: pleat train --backend nccl exits 2, one line naming the variable and the fix", async () => {
  const io = memoryIo()
  const before = process.env.PLEAT_DISTRIBUTED_DEBUG
  process.env.PLEAT_DISTRIBUTED_DEBUG = "INFO"
  try {
    expect(await Cli.run(["train", "--backend", "nccl", "--world", "1", "--steps", "1"], io)).toBe(2)
    expect(io.err.trim().split("\n")).toHaveLength(1)
    expect(io.err).toMatch(/PLEAT_DISTRIBUTED_DEBUG.*"INFO".*is not OFF or DETAIL.*unset it, or set DETAIL/)
  } finally {
    if (before === undefined) delete process.env.PLEAT_DISTRIBUTED_DEBUG
    else process.env.PLEAT_DISTRIBUTED_DEBUG = before
  }
})
