// Validation of parallel configurations: accepted exactly when the oracle says so, and every
// rejection names the right field.
import * as Result from "effect/Result"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import { anyDegrees, factorized } from "./arbitraries.js"
import { type OracleInput, allOrders, isValid } from "./oracle.js"

const validate = (c: OracleInput) => ParallelConfig.validate({ world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, order: c.order.join("-") })

const fieldOf = (input: ParallelConfig.ParallelInput): string | undefined => {
  const r = ParallelConfig.validate(input)
  return Result.isFailure(r) ? r.failure.field : undefined
}

/** The field the oracle expects a rejection to name. */
const expectedField = (c: OracleInput): string => (c.world % (c.tp * c.cp * c.pp) !== 0 || c.world % (c.etp * c.ep * c.pp) !== 0 ? "world" : "order")

const everyOrder = factorized(4096).chain((c) => fc.constantFrom(...allOrders).map((order) => ({ ...c, order })))

describe("parallel configuration", () => {
  test("accepts exactly the configurations the oracle accepts, naming the right field otherwise", () => {
    fc.assert(
      fc.property(fc.oneof(anyDegrees, everyOrder), (c) => {
        const r = validate(c)
        expect(Result.isSuccess(r)).toBe(isValid(c))
        if (Result.isFailure(r)) {
          expect(r.failure.field).toBe(expectedField(c))
          expect(r.failure.message).toContain("fix:")
        }
      }),
      { numRuns: 400 },
    )
  })

  test("derives dp and edp, and etp defaults to tp only when omitted", () => {
    fc.assert(
      fc.property(factorized(4096).filter(isValid), fc.boolean(), (c, omitEtp) => {
        const input = { world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, order: c.order.join("-") }
        const r = ParallelConfig.validate(omitEtp ? input : { ...input, etp: c.etp })
        if (omitEtp) {
          // Omitting etp means etp = tp, which may or may not fit the world.
          if (Result.isSuccess(r)) {
            expect(r.success.sizes.etp).toBe(c.tp)
            expect(r.success.etpGiven).toBe(false)
          }
          return
        }
        expect(Result.isSuccess(r)).toBe(true)
        if (Result.isSuccess(r)) {
          const s = r.success.sizes
          expect(s.dp).toBe(c.world / (c.tp * c.cp * c.pp))
          expect(s.edp).toBe(c.world / (c.etp * c.ep * c.pp))
          expect(s.etp).toBe(c.etp)
          expect(r.success.etpGiven).toBe(true)
        }
      }),
      { numRuns: 200 },
    )
  })

  test("degrees that are not positive integers are rejected naming their field", () => {
    const bad = fc.oneof(fc.integer({ max: 0 }), fc.double({ noInteger: true }), fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60))
    const field = fc.constantFrom("world", "tp", "cp", "pp", "ep", "etp", "vpp")
    fc.assert(
      fc.property(field, bad, (name, value) => {
        const input = { world: 16, tp: 1, cp: 1, pp: 2, ep: 1, [name]: value }
        expect(fieldOf(input)).toBe(name)
      }),
      { numRuns: 200 },
    )
    expect(fieldOf({ world: undefined })).toBe("world")
  })

  test("vpp needs pp > 1", () => {
    expect(fieldOf({ world: 8, pp: 1, vpp: 2 })).toBe("vpp")
    expect(fieldOf({ world: 8, pp: 2, vpp: 2 })).toBeUndefined()
    expect(ParallelConfig.make({ world: 8, pp: 2, vpp: 3 }).vpp).toBe(3)
  })

  test("order tokens must be known and unique; case does not matter", () => {
    for (const order of ["tp-cp-ep-dp-xp", "tp-tp-ep-dp-pp", "", "tp--dp", "tp-cp-ep-dp-pp-", "etp-ep-dp-pp"]) {
      expect(fieldOf({ world: 8, order }), order).toBe("order")
    }
    expect(ParallelConfig.make({ world: 8, tp: 2, order: "TP-CP-EP-DP-PP" }).order.written).toEqual(["tp", "cp", "ep", "dp", "pp"])
  })

  test("an axis of size > 1 may not be left out of the order; size-1 axes may", () => {
    expect(fieldOf({ world: 8, cp: 2, order: "tp-ep-dp-pp" })).toBe("order")
    expect(fieldOf({ world: 8, tp: 1, etp: 2, ep: 2, order: "cp-ep-dp-pp" })).toBe("order")
    expect(fieldOf({ world: 8, tp: 2, etp: 2, ep: 4, order: "tp-ep-pp" })).toBe("order") // dp 4, edp 1
    expect(fieldOf({ world: 8, tp: 2, etp: 2, ep: 4, order: "tp-ep-dp" })).toBeUndefined()
    const c = ParallelConfig.make({ world: 8, tp: 8, ep: 4, etp: 2, order: "tp-ep" })
    expect(c.order.full).toEqual(["tp", "ep", "cp", "dp", "pp"])
  })

  test("tp must come before ep; pp-not-last needs pp = 1 or dp = edp (reference example E)", () => {
    expect(fieldOf({ world: 8, order: "ep-tp-cp-dp-pp" })).toBe("order")
    expect(fieldOf({ world: 8, pp: 2, ep: 1, order: "tp-pp-ep-dp" })).toBeUndefined()
    expect(fieldOf({ world: 8, pp: 2, ep: 2, order: "tp-pp-ep-dp" })).toBe("order")
  })

  test("messages name the field, the value and the fix, on one line", () => {
    const r = ParallelConfig.validate({ world: 12, tp: 2, cp: 2, pp: 2 })
    expect(Result.isFailure(r)).toBe(true)
    if (Result.isFailure(r)) {
      expect(r.failure.message).toMatch(/^world: 12 is not divisible by tp\*cp\*pp = 2\*2\*2 = 8; fix: /)
      expect(r.failure.message).not.toContain("\n")
    }
    const d = ParallelConfig.validate({ world: 8, tp: 2, ep: 8 })
    if (Result.isFailure(d)) expect(d.failure.message).toContain("etp defaulted to tp = 2")
    else expect.fail("tp 2 with ep 8 on 8 ranks must be rejected (etp defaults to 2)")
  })

  test("checks run in the listed order: integers, divisibility, order, vpp", () => {
    expect(fieldOf({ world: 12, tp: 0, order: "xx" })).toBe("tp")
    expect(fieldOf({ world: 12, tp: 8, order: "xx", vpp: 2 })).toBe("world")
    expect(fieldOf({ world: 16, tp: 2, ep: 16, order: "xx" })).toBe("world")
    expect(fieldOf({ world: 16, tp: 2, order: "xx", vpp: 2 })).toBe("order")
    expect(fieldOf({ world: 16, tp: 2, order: "ep-tp-cp-dp-pp", vpp: 2 })).toBe("order")
    expect(fieldOf({ world: 16, tp: 2, vpp: 2 })).toBe("vpp")
  })
})
