// The progress bar fits the terminal: one line never wider than the terminal (a wider one would
// wrap and break the in-place redraw), whatever the width, the counts and the text; the counts
// are shown whenever they fit; on a pipe, plain lines.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Progress from "../../src/cli/Progress.js"

describe("progress line", () => {
  test("never wider than columns - 1, never more than one line, counts shown when they fit", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.nat(),
        fc.string({ maxLength: 120 }).map((s) => s.replace(/\s/g, " ")),
        (columns, total, d, text) => {
          const done = d % (total + 1)
          const line = Progress.line(done, total, text, columns)
          expect(line.length).toBeLessThanOrEqual(Math.max(1, columns - 1))
          expect(line).not.toMatch(/[\n\r]/)
          const counts = `${done}/${total}`
          if (columns - 1 >= counts.length) expect(line).toContain(counts)
        },
      ),
      { numRuns: 500 },
    )
  })

  test("a wide terminal gets the full bar and text; a narrow one a short bar; the bar fills with the steps", () => {
    const text = "loss 3.412 | 1234 tok/s"
    expect(Progress.line(50, 100, text, 120)).toBe(`[${"#".repeat(12)}${"-".repeat(12)}] 50/100 ${text}`)
    // Under 60 columns the bar has at most 10 cells; it shrinks before the text is cut...
    expect(Progress.line(50, 100, "", 59)).toBe(`[${"#".repeat(5)}${"-".repeat(5)}] 50/100`)
    expect(Progress.line(50, 100, text, 40)).toBe(`[###---] 50/100 ${text}`)
    // ...then goes, and then the text is cut.
    expect(Progress.line(50, 100, text, 30)).toBe("50/100 loss 3.412 | 1234 t...")
    expect(Progress.line(100, 100, "", 30)).toBe(`[${"#".repeat(10)}] 100/100`)
    expect(Progress.line(3, 100, text, 8)).toBe("3/100")
  })

  test("on a pipe: a plain line at the first step, every tenth and the last", () => {
    const written: Array<string> = []
    const stream = { isTTY: false, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream
    const p = Progress.make(25, 0, stream)
    for (let k = 1; k <= 25; k++) p.update(k, `k ${k}`)
    p.finish()
    expect(written).toEqual(["step 1/25 k 1\n", "step 10/25 k 10\n", "step 20/25 k 20\n", "step 25/25 k 25\n"])
  })
})
