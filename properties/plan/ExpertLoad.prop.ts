// The planner's expert load from a recorded routing (ExpertLoad; `pleat plan --routing DIR`): the
// busiest EP rank's tokens over the mean's, averaged over steps and layers: 1 at ep 1 and for a
// balanced routing, at most ep, as counted by hand; a balanced recording predicts the step the
// balanced model does, a skewed one a longer step whose routed terms grow, and a recording of
// other experts is refused with one line.
import { writeFileSync } from "node:fs"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ExpertLoad from "../../src/plan/ExpertLoad.js"
import * as Npy from "../../src/train/Npy.js"
import { fresh, run } from "../cli/cliRun.js"

/** A one-step recording of `experts` [1 layer, tokens, 2]. */
const recording = (label: string, experts: ReadonlyArray<number>): string => {
  const dir = fresh(label)
  writeFileSync(path.join(dir, "step-00000001.npy"), Npy.encodeInt32(Int32Array.from(experts), [1, experts.length / 2, 2]))
  return dir
}

describe("ExpertLoad", () => {
  test("1 at ep 1 and for equal loads, between 1 and ep, the busiest rank's share as counted", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 8, maxLength: 8 }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 }),
        (counts) => {
          expect(ExpertLoad.factor(counts, 1)).toBe(1)
          for (const ep of [2, 4, 8]) {
            const f = ExpertLoad.factor(counts, ep)
            expect(f).toBeGreaterThanOrEqual(1 - 1e-12)
            expect(f).toBeLessThanOrEqual(ep + 1e-12)
            expect(ExpertLoad.factor([[new Array(8).fill(7)]], ep)).toBe(1)
          }
        },
      ),
    )
    // Two layers: [8, 0, 0, 0] at ep 2 has ranks 8 and 0 (mean 4: 2); [1, 1, 3, 3] ranks 2 and 6 (1.5).
    expect(
      ExpertLoad.factor(
        [
          [
            [8, 0, 0, 0],
            [1, 1, 3, 3],
          ],
        ],
        2,
      ),
    ).toBe((2 + 1.5) / 2)
    expect(
      ExpertLoad.factor(
        [
          [
            [8, 0, 0, 0],
            [1, 1, 3, 3],
          ],
        ],
        4,
      ),
    ).toBe((4 + 12 / 8) / 2)
  })

  test("pleat plan --routing: balanced as the balanced model, skewed slower, other experts refused", async () => {
    const mapping = ["--tp", "1", "--cp", "1", "--pp", "2", "--vpp", "8", "--ep", "8", "--etp", "1", "--micro-batch", "1", "--recompute", "full"]
    const plan = async (extra: ReadonlyArray<string>) => {
      const r = await run(["plan", "--model", "mixtral-8x7b", "--gpus", "64", "--global-batch", "256", ...mapping, "--json", ...extra])
      expect(r.status, r.err).toBe(0)
      return JSON.parse(r.out).candidates[0]
    }
    // 16 tokens, top-2: token t to experts 2t and 2t + 1 mod 8 (4 each), or all to experts 0 and 1.
    const balanced = recording(
      "plan-balanced",
      Array.from({ length: 32 }, (_, i) => i % 8),
    )
    const skewed = recording(
      "plan-skewed",
      Array.from({ length: 32 }, (_, i) => i % 2),
    )
    const [plain, even, uneven] = [await plan([]), await plan(["--routing", balanced]), await plan(["--routing", skewed])]
    expect(plain.expertLoad).toBeUndefined()
    expect(even.expertLoad).toBe(1)
    expect(even.stepSeconds).toBe(plain.stepSeconds)
    // The balanced recording's margin is 1, under the calibration's 1.2 for dropless imbalance.
    expect(even.memoryGiB).toBeLessThan(plain.memoryGiB)
    // At ep 8 each rank holds one expert: the two that get every token hold 4 times the mean.
    expect(uneven.expertLoad).toBe(4)
    expect(uneven.stepSeconds).toBeGreaterThan(even.stepSeconds)
    for (const term of ["gemm", "ep", "elementwise"]) expect(uneven.breakdown[term], term).toBeGreaterThan(even.breakdown[term])
    expect(uneven.breakdown.attention).toBe(even.breakdown.attention)
    const sixteen = recording(
      "plan-sixteen",
      Array.from({ length: 32 }, (_, i) => i % 16),
    )
    const refused = await run(["plan", "--model", "mixtral-8x7b", "--gpus", "64", "--global-batch", "256", "--routing", sixteen])
    expect(refused.status).toBe(2)
    expect(refused.out).toBe("")
    expect(refused.err).toMatch(/^pleat plan: --routing: .* is a routing of 16 experts, and --model has 8; fix: .*\n$/)
  }, 60_000)
})
