// MemoryHeadroom (src/tensor/MemoryHeadroom.ts): the check that turns a job outgrowing the
// machine's memory into a ConfigError instead of the kernel's OOM killer. The meter reads the
// memory exactly when a new buffer is `checkEvery` or more or that much has been made since the
// last read, and refuses exactly the requests that would leave less than the reserve; the
// reserve is 4% of the memory between 64 MiB and 2 GiB; a container's file cache counts as available; PLEAT_MEMORY_LIMIT is parsed as a size
// and caps the memory; a refusal thrown inside a collective reaches the command line as the
// ConfigError it is (exit 2), on the local and threads backends; and pleat train under a
// PLEAT_MEMORY_LIMIT its micro-batch outgrows ends with exit 2 and one line naming the fix (on
// one thread, on workers, and under MPI where mpirun is here), while a run that fits is untouched.
import { spawnSync } from "node:child_process"
import os from "node:os"
import path from "node:path"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as BadInput from "../../src/cli/BadInput.js"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as Backend from "../../src/runtime/Backend.js"
import * as LocalBackend from "../../src/runtime/LocalBackend.js"
import * as RankProgram from "../../src/runtime/RankProgram.js"
import * as ThreadsBackend from "../../src/runtime/ThreadsBackend.js"
import * as KernelMemory from "../../src/tensor/KernelMemory.js"
import * as MemoryHeadroom from "../../src/tensor/MemoryHeadroom.js"
import { missing, mpiEnv } from "../comm/mpi/mpirun.js"

const root = path.resolve(import.meta.dirname, "..", "..")
const MiB = 2 ** 20

describe("MemoryHeadroom", () => {
  test("the meter reads exactly at a large buffer or a checkEvery's worth of new ones, and refuses exactly what would eat into the reserve", () => {
    const request = fc.oneof(fc.integer({ min: 1, max: 8 * MiB }), fc.integer({ min: MemoryHeadroom.checkEvery - 4, max: 3 * MemoryHeadroom.checkEvery }))
    fc.assert(
      fc.property(
        fc.array(request, { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 0, max: 2 ** 36 }),
        fc.integer({ min: 2 ** 28, max: 2 ** 38 }),
        (bytes, available, memory) => {
          let reads = 0
          const m = MemoryHeadroom.meter(() => {
            reads += 1
            return { available, memory, of: "the machine" }
          })
          let since = 0
          let expectedReads = 0
          for (const b of bytes) {
            since += b
            const checked = b >= MemoryHeadroom.checkEvery || since >= MemoryHeadroom.checkEvery
            if (checked) {
              since = 0
              expectedReads += 1
            }
            const refused = checked && b + MemoryHeadroom.reserve(memory) > available
            let error: unknown
            try {
              m.admit(b)
            } catch (e) {
              error = e
            }
            expect(error !== undefined).toBe(refused)
            if (refused) {
              expect(ConfigError.isConfigError(error)).toBe(true)
              expect((error as ConfigError.ConfigError).field).toBe("memory")
            }
            expect(reads).toBe(expectedReads)
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  test("a cgroup's file cache counts as available: memory.stat's active_file + inactive_file (v1: the total_ ones where present)", () => {
    const n = fc.integer({ min: 0, max: 2 ** 40 })
    fc.assert(
      fc.property(n, n, n, n, n, fc.boolean(), (active, inactive, anon, shmem, totals, v1) => {
        const own = [`anon ${anon}`, `file ${active + inactive + shmem}`, `shmem ${shmem}`, `active_file ${active}`, `inactive_file ${inactive}`]
        const lines = v1 ? [...own, `total_active_file ${totals}`, `total_inactive_file ${active}`, `total_rss ${anon}`] : own
        expect(KernelMemory.fileCacheBytes(`${lines.join("\n")}\n`)).toBe(v1 ? totals + active : active + inactive)
      }),
    )
    expect(KernelMemory.fileCacheBytes("")).toBe(0)
    const here = KernelMemory.available()
    expect(here).toBeGreaterThan(0)
    expect(here).toBeLessThanOrEqual(KernelMemory.machineBytes())
  })

  test("the reserve is 4% of the memory, never under 64 MiB nor over 2 GiB", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 42 }), (memory) => {
        const r = MemoryHeadroom.reserve(memory)
        expect(r).toBe(Math.min(2 * 2 ** 30, Math.max(64 * MiB, Math.floor(0.04 * memory))))
        expect(r).toBeGreaterThanOrEqual(64 * MiB)
        expect(r).toBeLessThanOrEqual(2 * 2 ** 30)
      }),
    )
  })

  test("PLEAT_MEMORY_LIMIT: a size caps the memory (never above the machine's); anything else is a ConfigError naming it", () => {
    const machine = KernelMemory.machineBytes()
    expect(MemoryHeadroom.limitBytes({})).toBe(machine)
    expect(MemoryHeadroom.limitBytes({ PLEAT_MEMORY_LIMIT: "1GiB" })).toBe(Math.min(machine, 2 ** 30))
    expect(MemoryHeadroom.limitBytes({ PLEAT_MEMORY_LIMIT: "500MB" })).toBe(Math.min(machine, 5e8))
    expect(MemoryHeadroom.limitBytes({ PLEAT_MEMORY_LIMIT: "99TiB" })).toBe(machine)
    const capped = MemoryHeadroom.current({ PLEAT_MEMORY_LIMIT: "3GiB" })
    expect(capped.memory).toBe(3 * 2 ** 30)
    expect(capped.of).toBe("PLEAT_MEMORY_LIMIT")
    expect(capped.available).toBeLessThan(3 * 2 ** 30)
    const limit = process.constrainedMemory()
    expect(MemoryHeadroom.current({}).of).toBe(limit > 0 && limit < os.totalmem() ? "the container" : "the machine")
    for (const bad of ["12x", "-1", "0", "lots"]) {
      let error: unknown
      try {
        MemoryHeadroom.limitBytes({ PLEAT_MEMORY_LIMIT: bad })
      } catch (e) {
        error = e
      }
      expect(ConfigError.isConfigError(error) && error.field === "PLEAT_MEMORY_LIMIT" && error.value === bad).toBe(true)
    }
  })

  for (const [name, layer] of [
    ["local", LocalBackend.layer()],
    ["local-zero-copy", LocalBackend.layer({ copy: false })],
    ["threads", ThreadsBackend.layer({ workers: 2 })],
  ] as const) {
    test(`a refusal inside a collective reaches the command line as the ConfigError it is (${name})`, async () => {
      const program = RankProgram.make(new URL("./memoryScenarios.ts", import.meta.url), "gatherShortOfMemory", { world: 2, rows: MemoryHeadroom.checkEvery / 4096 / 2 })
      const exit = await Effect.runPromise(Effect.exit(Effect.provide(Backend.run({ world: 2, program, timeoutMs: 20_000 }), layer)))
      expect(Exit.isFailure(exit)).toBe(true)
      if (!Exit.isFailure(exit)) return
      const found = BadInput.find(Cause.squash(exit.cause))
      expect(found !== undefined && ConfigError.isConfigError(found) ? found.field : found).toBe("memory")
      expect(String(found)).toContain("is not enough for this job")
    }, 60_000)
  }

  test("pleat train: a micro-batch that outgrows PLEAT_MEMORY_LIMIT ends with exit 2 and one line, on one thread, on workers and under MPI; a run that fits is untouched", () => {
    const cli = path.join(root, "dist", "cli", "main.js")
    for (const backend of ["local", "threads"]) {
      const run = spawnSync(process.execPath, [cli, "train", "--backend", backend, "--micro-batch", "20000", "--global-batch", "20000", "--steps", "1"], {
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, PLEAT_MEMORY_LIMIT: "1GiB" },
      })
      expect(run.status, run.stderr).toBe(2)
      const lines = run.stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(
        /^pleat train: rank \d+ failed at step 1: memory: "1\.00 GiB" \(PLEAT_MEMORY_LIMIT\) is not enough for this job: .*; fix: a larger PLEAT_MEMORY_LIMIT, or in training fewer tokens a micro-batch .*; else a smaller model; no checkpoint written$/,
      )
    }
    // Under MPI the refusal strikes inside an MPI completion (an all-to-all's result made when the
    // sizes' exchange ends), where a throw was lost to Node-API and the job timed out (exit 1, 30 s).
    if (missing() === undefined) {
      const started = performance.now()
      const flags = ["--world", "2", "--tp", "2", "--pp", "1", "--cp", "1", "--ep", "2", "--micro-batch", "20000", "--global-batch", "20000", "--steps", "1"]
      const run = spawnSync(process.execPath, [cli, "launch", "-n", "2", "--", "train", ...flags], {
        encoding: "utf8",
        timeout: 120_000,
        env: { ...mpiEnv(), PLEAT_MEMORY_LIMIT: "600MiB" },
      })
      expect(run.status, run.stderr).toBe(2)
      expect(run.stderr).toMatch(
        /pleat train: rank \d+ failed at step 1: memory: "600\.0 MiB" \(PLEAT_MEMORY_LIMIT\) is not enough for this job: .*; fix: a larger PLEAT_MEMORY_LIMIT, or in training fewer tokens/,
      )
      expect(performance.now() - started).toBeLessThan(25_000)
    }
    const fits = spawnSync(process.execPath, [cli, "train", "--steps", "2"], { encoding: "utf8", timeout: 120_000, env: { ...process.env, PLEAT_MEMORY_LIMIT: "4GiB" } })
    expect(fits.status, fits.stderr).toBe(0)
  }, 300_000)
})
