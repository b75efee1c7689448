// scripts/lib/device-report.mjs, the GPU check's report: on disk after every check (partial until
// the final save), a throwing check recorded as failed with its error while the run goes on, a
// phase whose set-up throws recorded too, checks past the budget recorded as not run; the
// timed rows' target verdict; the random stream without a short cycle.
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { expect, test } from "vitest"
// @ts-expect-error: a plain JavaScript module of the scripts (no declarations)
import { againstTarget, deviceReport, floatsFrom, randomStream } from "../../scripts/lib/device-report.mjs"

const target = () => path.join(mkdtempSync(path.join(tmpdir(), "pleat-device-report-")), "r.json")
const read = (file: string) => JSON.parse(readFileSync(file, "utf8"))

test("every check is on disk when it ends; failures and set-up errors are recorded; the final save clears partial", async () => {
  const file = target()
  const r = deviceReport({ target: file, head: { date: "d" }, budgetSeconds: 60, say: () => undefined })
  r.check("passes", () => ({ value: 1 }))
  expect(read(file)).toMatchObject({ date: "d", partial: true, checks: [{ name: "passes", ok: true, detail: { value: 1 } }] })
  r.check("throws", () => {
    throw new Error("boom")
  })
  await r.checkAsync("async", async () => 2)
  await r.phase("a phase", () => {
    throw new Error("no addon")
  })
  const partial = read(file)
  expect(partial.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok])).toEqual([
    ["passes", true],
    ["throws", false],
    ["async", true],
    ["a phase (set-up)", false],
  ])
  expect(String(partial.checks[1].detail)).toContain("boom")
  r.set({ summary: { n: 4 } })
  r.save(true)
  expect(read(file)).toMatchObject({ partial: false, summary: { n: 4 } })
})

test("past the budget a check is recorded as not run, its code never called", async () => {
  const file = target()
  const r = deviceReport({ target: file, head: {}, budgetSeconds: 0, say: () => undefined })
  let called = false
  await new Promise((resolve) => setTimeout(resolve, 2))
  r.check("late", () => {
    called = true
  })
  await r.checkAsync("later", async () => {
    called = true
  })
  expect(called).toBe(false)
  expect(read(file).checks).toMatchObject([
    { name: "late", ok: false, skipped: true },
    { name: "later", ok: false, skipped: true },
  ])
  expect(read(file).checks[0].detail).toContain("budget")
})

test("a timed row says whether it meets its target", () => {
  expect(againstTarget(0.59, 0.6)).toEqual({ ratio: 0.59, target: 0.6, meetsTarget: false })
  expect(againstTarget(0.6, 0.6).meetsTarget).toBe(true)
})

test("the random stream: in [-1, 1), no cycle within 2^20 draws; floatsFrom is deterministic and within its scale", () => {
  const random = randomStream(7)
  const seen = new Set<number>()
  let outside = 0
  for (let i = 0; i < 1 << 20; i++) {
    const v = random()
    if (!(v >= -1 && v < 1)) outside++
    seen.add(v)
  }
  expect(outside).toBe(0)
  expect(seen.size).toBe(1 << 20)
  const a = floatsFrom(randomStream(3))(5_000_000)
  const b = floatsFrom(randomStream(3))(5_000_000)
  // Compared as bytes (an element-wise deep equality of 5M floats took most of a minute).
  expect(a.length).toBe(5_000_000)
  expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true)
  expect(a.every((v: number) => Math.abs(v) <= 4 + 0.75)).toBe(true)
})
