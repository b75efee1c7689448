// --moe-layer-freq (Megatron's moe_freq_type; src/cli/LayerPattern.ts): a list expression of 0s
// and 1s built from lists, +, * (either side) and parentheses reads as the list Python would
// evaluate it to (random expressions against their expansion built beside them); an integer reads
// as itself; anything else is refused naming the flag. A list becomes --dense-first K
// --moe-every N exactly when it is that placement (every placement round-trips; a list of no such
// form is refused); a run with it trains as one with the same --dense-first and --moe-every. The
// same for --window-attn-skip-freq's list form (every N-th layer without the window).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { ConfigError } from "../../src/errors/ConfigError.js"
import * as LayerPattern from "../../src/cli/LayerPattern.js"
import * as ModelContext from "../../src/model/ModelContext.js"
import { run } from "./cliRun.js"
import { refused } from "./refused.js"

/** An expression's text and the list it stands for. */
interface Expression {
  readonly text: string
  readonly list: ReadonlyArray<number>
}

const expressionArb: fc.Arbitrary<Expression> = fc.letrec<{ expr: Expression }>((tie) => ({
  expr: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.array(fc.constantFrom(0, 1), { maxLength: 4 }).map((list) => ({ text: `[${list.join(", ")}]`, list })),
    fc.tuple(tie("expr"), tie("expr")).map(([a, b]) => ({ text: `${a.text}+${b.text}`, list: [...a.list, ...b.list] })),
    fc.tuple(tie("expr"), fc.integer({ min: 0, max: 4 }), fc.boolean()).map(([a, n, before]) => ({
      text: before ? `${n}*(${a.text})` : `(${a.text})*${n}`,
      list: Array.from({ length: n }, () => a.list).flat(),
    })),
    tie("expr").map((a) => ({ text: `(${a.text})`, list: a.list })),
  ),
})).expr

describe("--moe-layer-freq", () => {
  test("a list expression reads as its expansion; an integer as itself", () => {
    fc.assert(
      fc.property(expressionArb, (e) => {
        expect(LayerPattern.parse("moe-layer-freq", e.text)).toEqual(e.list)
      }),
      { numRuns: 300 },
    )
    expect(LayerPattern.parse("moe-layer-freq", "([0]*3+[1]*58)")).toEqual([...new Array(3).fill(0), ...new Array(58).fill(1)])
    expect(LayerPattern.parse("moe-layer-freq", " 2 ")).toBe(2)
  })

  test("anything else is refused, naming the flag", () => {
    for (const bad of ["[2]", "([0]*3", "[0]+", "abc", "[0]*", "1.5", "[0] [1]", "[0]*-1", "[1]*99999999", `${"(".repeat(5000)}[1]${")".repeat(5000)}`]) {
      const thrown = (() => {
        try {
          LayerPattern.parse("moe-layer-freq", bad)
        } catch (e) {
          return e
        }
      })()
      expect(thrown, bad).toBeInstanceOf(ConfigError)
      expect((thrown as ConfigError).field).toBe("moe-layer-freq")
    }
  })

  test("a list is taken exactly when it is K dense layers then every N-th MoE", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(0, 1), { minLength: 1, maxLength: 12 }), (list) => {
        const layers = list.length
        const text = `[${list.join(",")}]`
        const fits = Array.from({ length: layers }, (_, k) => Array.from({ length: layers }, (_, n) => ({ denseFirst: k, moeEvery: n + 1 }))).flat()
        const some = fits.some((p) => list.every((x, l) => (x === 1) === ModelContext.isMoe({ ...p, layers }, l)))
        if (!some) {
          expect(() => LayerPattern.moePlacementOf("moe-layer-freq", text, layers)).toThrow(ConfigError)
          return
        }
        const placement = LayerPattern.moePlacementOf("moe-layer-freq", text, layers)
        list.forEach((x, l) => expect(ModelContext.isMoe({ ...placement, layers }, l)).toBe(x === 1))
      }),
      { numRuns: 400 },
    )
    expect(LayerPattern.moePlacementOf("moe-layer-freq", "3", 7)).toEqual({ denseFirst: 0, moeEvery: 3 })
    expect(() => LayerPattern.moePlacementOf("moe-layer-freq", "[1,1]", 3)).toThrow(/has 2 entries for 3 layers/)
  })

  test("--window-attn-skip-freq takes Megatron's list exactly when it is every N-th layer without the window", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(0, 1), { minLength: 1, maxLength: 12 }), (list) => {
        const layers = list.length
        const text = `[${list.join(",")}]`
        const windowed = (skip: number) =>
          Array.from({ length: layers }, (_, l) => (ModelContext.windowOf({ slidingWindow: 1, windowAttnSkipFreq: skip, layers }, l) === undefined ? 0 : 1))
        const some = Array.from({ length: layers + 1 }, (_, n) => windowed(n + 1)).some((w) => w.every((x, l) => x === list[l]))
        if (!some) {
          expect(() => LayerPattern.windowSkipOf("window-attn-skip-freq", text, layers)).toThrow(ConfigError)
          return
        }
        expect(windowed(LayerPattern.windowSkipOf("window-attn-skip-freq", text, layers))).toEqual(list)
      }),
      { numRuns: 400 },
    )
    expect(LayerPattern.windowSkipOf("window-attn-skip-freq", "([1]*5+[0])*2", 12)).toBe(6)
  })

  test("a run with it trains as the same --dense-first and --moe-every; given with them it is refused", async () => {
    const loss = async (flags: ReadonlyArray<string>) => {
      const r = await run(["train", "--steps", "2", "--layers", "4", "--log", "json", ...flags])
      expect(r.status, r.err).toBe(0)
      const summary = r.out.split("\n").find((l) => l.includes('"finalLoss"')) as string
      const { finalLoss, firstLoss } = JSON.parse(summary) as { finalLoss: number; firstLoss: number }
      return [firstLoss, finalLoss]
    }
    expect(await loss(["--moe-layer-freq", "[0]*1+[1,0]*1+[1]"])).toEqual(await loss(["--dense-first", "1", "--moe-every", "2"]))
    expect(refused(["train", "--moe-layer-freq", "2", "--moe-every", "2"])).toContain("--moe-layer-freq")
    const windowed = ["--sliding-window", "3", "--window-attn-skip-freq"]
    expect(await loss([...windowed, "([1]+[0])*2"])).toEqual(await loss([...windowed, "2"]))
    expect(refused(["train", "--layers", "4", ...windowed, "[0,1,1,0]"])).toContain("--window-attn-skip-freq")
    expect(refused(["train", "--layers", "4", "--moe-layer-freq", "[0,1,1,0]"])).toContain("--moe-layer-freq")
  }, 120_000)
})
