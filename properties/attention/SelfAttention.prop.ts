// Self-attention under TP, SP and CP equals the single-rank reference, output and every
// gradient (input and each weight shard), for random (tp, cp, dp), SP on and off, both CP
// exchanges; bad sequences are rejected before any work.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ContextParallel from "../../src/attention/ContextParallel.js"
import * as ParallelLinear from "../../src/dataflow/ParallelLinear.js"
import * as SelfAttention from "../../src/attention/SelfAttention.js"
import * as Group from "../../src/comm/Group.js"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Job from "../../src/runtime/Job.js"
import * as Elementwise from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"

const close = (a: ReadonlyArray<number>, b: ReadonlyArray<number>, what: string) => {
  expect(a.length, what).toBe(b.length)
  a.forEach((v, i) => expect(Math.abs(v - (b[i] as number)), `${what}[${i}]: ${v} vs ${b[i]}`).toBeLessThan(1e-9 * Math.max(1, Math.abs(b[i] as number))))
}

const setting = fc.record({
  tp: fc.constantFrom(1, 2),
  cp: fc.constantFrom(1, 2),
  dp: fc.constantFrom(1, 2),
  sp: fc.boolean(),
  ring: fc.boolean(),
  batch: fc.constantFrom(1, 2),
  chunk: fc.constantFrom(1, 2),
  kvGroups: fc.constantFrom(1, 2),
  seed: fc.integer({ min: 1, max: 10_000 }),
})

describe("self-attention under TP x CP x DP", () => {
  test("equals one rank, forward and backward", async () => {
    await fc.assert(
      fc.asyncProperty(setting, async (s) => {
        const world = s.tp * s.cp * s.dp
        const seq = 2 * s.cp * s.chunk * (s.sp ? s.tp : 1)
        const hidden = 4
        const kvHeads = s.tp
        const heads = kvHeads * s.kvGroups
        const d = 2
        const config = ParallelConfig.make({ world, tp: s.tp, cp: s.cp })
        const fold = Folding.make(config)
        const full = {
          wq: uniform([hidden, heads * d], s.seed),
          wk: uniform([hidden, kvHeads * d], s.seed + 1),
          wv: uniform([hidden, kvHeads * d], s.seed + 2),
          wo: uniform([heads * d, hidden], s.seed + 3),
        }
        const xs = Array.from({ length: s.dp }, (_, r) => uniform([s.batch, seq, hidden], s.seed + 10 + r))
        const rs = Array.from({ length: s.dp }, (_, r) => uniform([s.batch, seq, hidden], s.seed + 20 + r))

        // Reference: one rank, each dp batch separately, full sequence, every head.
        const reference = xs.map((x, r) => {
          const tape = Tape.make()
          const w = {
            wq: tape.parameter(Tensor.detachCopy(full.wq)),
            wk: tape.parameter(Tensor.detachCopy(full.wk)),
            wv: tape.parameter(Tensor.detachCopy(full.wv)),
            wo: tape.parameter(Tensor.detachCopy(full.wo)),
          }
          const xt = tape.parameter(Shape.reshape(Tensor.detachCopy(x), [s.batch * seq, hidden]))
          const one = Group.make("one", [0])
          const c = { batch: s.batch, seq, heads, kvHeads, headDim: d, tp: one, cp: one, sequenceParallel: false }
          return Job.runPromise({ world: 1 }, () =>
            Effect.gen(function* () {
              const out = yield* SelfAttention.forward(xt, w, c, 0)
              yield* tape.backwardEffect(Reduce.sumAll(Elementwise.mul(out, Shape.reshape(rs[r] as Tensor.Tensor, [s.batch * seq, hidden]))))
              return {
                out: Tensor.toArray(out),
                dx: Tensor.toArray(xt.grad as Tensor.Tensor),
                dw: Object.fromEntries(Object.entries(w).map(([k, t]) => [k, t.grad as Tensor.Tensor])),
              }
            }),
          ).then((x) => x[0] as { out: Array<number>; dx: Array<number>; dw: Record<string, Tensor.Tensor> })
        })
        const refs = await Promise.all(reference)

        const results = await Job.runPromise({ world, backend: "local" }, (rank) =>
          Effect.gen(function* () {
            const p = Folding.place(fold, rank)
            const tp = Group.ofFamily(config, "tp", rank)
            const cp = Group.ofFamily(config, "cp", rank)
            const tape = Tape.make({ name: `rank ${rank}` })
            const w = {
              wq: tape.parameter(ParallelLinear.columnShard(full.wq, p.tp, s.tp)),
              wk: tape.parameter(ParallelLinear.columnShard(full.wk, p.tp, s.tp)),
              wv: tape.parameter(ParallelLinear.columnShard(full.wv, p.tp, s.tp)),
              wo: tape.parameter(ParallelLinear.rowShard(full.wo, p.tp, s.tp)),
            }
            const positions = Array.from(ContextParallel.positions(seq, s.cp, p.cp))
            const localRows = () => {
              const rows: Array<number> = []
              for (let b = 0; b < s.batch; b++) for (const pos of positions) rows.push(b * seq + pos)
              return rows
            }
            const rowsOf = localRows()
            const part = rowsOf.length / (s.sp ? s.tp : 1)
            const mine = s.sp ? rowsOf.slice(p.tp * part, (p.tp + 1) * part) : rowsOf
            const pick = (t: Tensor.Tensor, rows: Array<number>) => {
              const flat = Tensor.toArray(t)
              return Tensor.fromArray(
                rows.flatMap((r) => flat.slice(r * hidden, (r + 1) * hidden)),
                [rows.length, hidden],
                { dtype: "float64" },
              )
            }
            const x = tape.parameter(pick(xs[p.dp] as Tensor.Tensor, mine))
            const c = { batch: s.batch, seq, heads, kvHeads, headDim: d, tp, cp, sequenceParallel: s.sp, cpExchange: s.ring ? ("ring" as const) : ("allgather" as const) }
            SelfAttention.check(c)
            const out = yield* SelfAttention.forward(x, w, c, p.cp)
            // Each token's loss counts once over the job: replicated outputs (SP off) split it over tp.
            const weight = pick(rs[p.dp] as Tensor.Tensor, mine)
            const loss = Elementwise.scale(Reduce.sumAll(Elementwise.mul(out, weight)), s.sp ? 1 : 1 / s.tp)
            yield* tape.backwardEffect(loss)
            return {
              p,
              mine,
              out: Tensor.toArray(out),
              dx: Tensor.toArray(x.grad as Tensor.Tensor),
              dw: Object.fromEntries(Object.entries(w).map(([k, t]) => [k, Tensor.toArray(t.grad as Tensor.Tensor)])),
            }
          }),
        )
        for (const r of results) {
          const ref = refs[r.p.dp] as (typeof refs)[number]
          close(
            r.out,
            r.mine.flatMap((row) => ref.out.slice(row * hidden, (row + 1) * hidden)),
            `out rank ${r.p.tp},${r.p.cp},${r.p.dp}`,
          )
          close(
            r.dx,
            r.mine.flatMap((row) => ref.dx.slice(row * hidden, (row + 1) * hidden)),
            `dx rank ${r.p.tp},${r.p.cp},${r.p.dp}`,
          )
        }
        // Weight gradients: summed over the cp and dp ranks of one tp shard, they are the
        // reference's shard of the gradient summed over the dp batches.
        for (let t = 0; t < s.tp; t++) {
          for (const name of ["wq", "wk", "wv", "wo"] as const) {
            const shardOf = (g: Tensor.Tensor) => (name === "wo" ? ParallelLinear.rowShard(g, t, s.tp) : ParallelLinear.columnShard(g, t, s.tp))
            const expected = refs.map((ref) => Tensor.toArray(shardOf(ref.dw[name] as Tensor.Tensor))).reduce((a, b) => a.map((v, i) => v + (b[i] as number)))
            const got = results
              .filter((r) => r.p.tp === t)
              .map((r) => r.dw[name] as Array<number>)
              .reduce((a, b) => a.map((v, i) => v + (b[i] as number)))
            close(got, expected, `${name} shard ${t}`)
          }
        }
      }),
      { numRuns: 25 },
    )
  })

  test("chunk order round-trips, and bad sequences are rejected naming the field", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), (cp, chunk) => {
        const seq = 2 * cp * chunk
        const tokens = Array.from({ length: seq }, (_, i) => i)
        const parts = Array.from({ length: cp }, (_, r) => ContextParallel.shard(tokens, cp, r))
        expect(ContextParallel.unshard(parts, seq)).toEqual(tokens)
        parts.forEach((part) => expect(part.length).toBe(seq / cp))
      }),
    )
    expect(() => ContextParallel.checkSequence(6, 2, 1, false)).toThrow("seq: 6 is not divisible by 2*cp = 4")
    expect(() => ContextParallel.checkSequence(8, 2, 3, true)).toThrow("not divisible by tp = 3 under sequence parallelism")
    const one = Group.make("one", [0])
    const two = Group.make("tp", [0, 1])
    expect(() => SelfAttention.check({ batch: 1, seq: 4, heads: 3, kvHeads: 1, headDim: 2, tp: two, cp: one, sequenceParallel: false })).toThrow(
      "heads: 3 is not divisible by tp = 2",
    )
  })
})
