// A rank worker's flags (src/runtime/threads/WorkerFlags.ts): inherited whole unless the parent
// loads tsx through its flags; then the parent's flag groups in order, without the tsx loaders
// and without those node refuses in a worker's execArgv. Also asked of node itself: every V8 or
// process-wide option pleat or a user passes is refused in a list, and inherited when none is.
import { Worker } from "node:worker_threads"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ProcessTuning from "../../src/runtime/ProcessTuning.js"
import * as WorkerFlags from "../../src/runtime/threads/WorkerFlags.js"

const flag = fc.constantFrom("--trace-warnings", "--enable-source-maps", "--max-old-space-size=4096", "--expose-gc", "--stack-size=984", "--conditions")
const value = fc.constantFrom("development", "x")
const group = fc.oneof(
  flag.map((f) => [f]),
  fc.tuple(flag, value).map(([f, v]) => [f, v]),
)
const tsxLoader = fc.constantFrom(["--import", "tsx"], ["--import=tsx"], ["--loader", "tsx/esm"], ["-r", "tsx/cjs"], ["--require=tsx/cjs"])
const otherLoader = fc.constantFrom(["--import", "./setup.mjs"], ["-r", "dotenv/config"])

describe("WorkerFlags.forWorker", () => {
  test("without a tsx loader the worker inherits everything (undefined)", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(group, otherLoader), { maxLength: 6 }), (gs) => {
        expect(WorkerFlags.forWorker(gs.flat(), () => true)).toBeUndefined()
      }),
    )
  })

  test("with one: the parent's groups in order, minus the tsx loaders and what workers refuse", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(group, otherLoader, tsxLoader), { maxLength: 8 }), tsxLoader, fc.func(fc.boolean()), (gs, loader, refusedBy) => {
        const argv = [...gs, loader].flat()
        const refused = (g: WorkerFlags.FlagGroup) => refusedBy(g.join(" "))
        const expected = [...gs, loader].filter((g) => !WorkerFlags.loadsTsx(g) && !refused(g)).flat()
        expect(WorkerFlags.forWorker(argv, refused)).toEqual(expected)
        // Groups rebuild argv exactly, and a value never leaves its flag.
        expect(WorkerFlags.groups(argv).flat()).toEqual(argv)
        for (const g of WorkerFlags.groups(argv)) expect(g.slice(1).every((w) => !w.startsWith("-"))).toBe(true)
      }),
    )
  })
})

describe("what node refuses in a worker's execArgv (the reason for the rule)", () => {
  const refused = (execArgv: Array<string>): boolean => {
    try {
      void new Worker("", { eval: true, execArgv }).terminate()
      return false
    } catch (error) {
      return (error as { code?: string }).code === "ERR_WORKER_INVALID_EXEC_ARGV"
    }
  }
  test("V8 options, pleat's among them, are refused in a list; a plain node option is not", () => {
    for (const f of [...ProcessTuning.nodeFlags, "--max-old-space-size=4096", "--expose-gc"]) expect(refused([f]), f).toBe(true)
    expect(refused(["--trace-warnings"])).toBe(false)
  })
})
