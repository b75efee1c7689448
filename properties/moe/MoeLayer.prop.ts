// The parallel MoE layer on random folded mappings equals the single-rank reference: output and
// every gradient (tokens, router, expert weights), dropless and with per-rank capacity, both
// dispatchers, the probs applied by the experts or by the combine (the reference applies them
// before fc2: the same sum in exact arithmetic) or, top-1, to the token before its expert;
// ranks with zero tokens and experts with zero rows included; LatentMoE layers (the experts at a
// latent width between two replicated projections, with and without biases) too.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Group from "../../src/comm/Group.js"
import * as Folding from "../../src/mapping/Folding.js"
import * as MoeLayer from "../../src/moe/MoeLayer.js"
import * as Job from "../../src/runtime/Job.js"
import * as Elementwise from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as Mappings from "../../src/testing/Mappings.js"
import { uniform } from "../tensor/gradcheck.js"
import { referenceMoe } from "./reference.js"

const h = 3

/** Expert shard e's block of F over etp: columns of gate/up, rows of down. */
const expertShard = (w: Tensor.Tensor, experts: [number, number], etp: number, etpSize: number, byColumns: boolean): Tensor.Tensor => {
  const [e0, e1] = experts
  const block = Shape.rows(w, e0, e1)
  const [g, r, c] = block.shape as [number, number, number]
  if (byColumns) {
    const width = c / etpSize
    const t = Shape.transpose(block, 1, 2) // [g, c, r]
    const picked = Shape.concat(
      Array.from({ length: g }, (_, i) => Shape.reshape(Shape.rows(Shape.reshape(Shape.rows(t, i, i + 1), [c, r]), etp * width, (etp + 1) * width), [1, width, r])),
      0,
    )
    return Shape.transpose(picked, 1, 2)
  }
  const height = r / etpSize
  return Shape.concat(
    Array.from({ length: g }, (_, i) => Shape.reshape(Shape.rows(Shape.reshape(Shape.rows(block, i, i + 1), [r, c]), etp * height, (etp + 1) * height), [1, height, c])),
    0,
  )
}

const sumArrays = (xs: ReadonlyArray<ReadonlyArray<number>>) => xs.reduce<Array<number>>((a, b) => a.map((v, i) => v + (b[i] as number)), new Array((xs[0] ?? []).length).fill(0))

const near = (got: ReadonlyArray<number>, want: ReadonlyArray<number>, what: string) => {
  expect(got.length, what).toBe(want.length)
  got.forEach((v, i) => expect(Math.abs(v - (want[i] as number)), `${what}[${i}] ${v} vs ${want[i]}`).toBeLessThan(1e-9 * Math.max(1, Math.abs(want[i] as number))))
}

const setting = Mappings.mappings({ maxWorld: 8 })
  .filter((c) => c.pp === 1)
  .chain((c) =>
    fc.record({
      c: fc.constant(c),
      perExpert: fc.constantFrom(1, 2),
      topk: fc.integer({ min: 1, max: 3 }),
      f: fc.constantFrom(1, 2),
      tokens: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 8, maxLength: 8 }),
      dispatcher: fc.constantFrom("alltoall" as const, "allgather" as const),
      probsAt: fc.constantFrom("experts" as const, "combine" as const, "input" as const),
      capacityFactor: fc.constantFrom(null, null, 0.5, 1, 2),
      padToCapacity: fc.boolean(),
      dropPolicy: fc.constantFrom("probs" as const, "position" as const),
      scoreFunction: fc.constantFrom("softmax" as const, "sigmoid" as const),
      latent: fc.constantFrom(undefined, undefined, 2, 5),
      latentBias: fc.boolean(),
      seed: fc.integer({ min: 1, max: 100_000 }),
    }),
  )

describe("the MoE layer under folding", () => {
  test("equals the single-rank reference, forward and backward, on random folded mappings", async () => {
    await fc.assert(
      fc.asyncProperty(setting, async (s) => {
        const { c } = s
        const config = Mappings.toConfig(c)
        const fold = Folding.make(config)
        const numExperts = c.ep * s.perExpert
        // Probs on the input take top-1.
        const topk = s.probsAt === "input" ? 1 : Math.min(s.topk, numExperts)
        const ffn = c.etp * s.f
        const moe: MoeLayer.MoeConfig = {
          numExperts,
          router: { topk, scoreFunction: s.scoreFunction },
          capacityFactor: s.capacityFactor,
          dropPolicy: s.dropPolicy,
          padToCapacity: s.padToCapacity,
          dispatcher: s.dispatcher,
          probsAt: s.probsAt,
        }
        // The experts' width: hidden, or the latent's.
        const x = s.latent ?? h
        const full = {
          router: uniform([h, numExperts], s.seed),
          wGate: uniform([numExperts, x, ffn], s.seed + 1),
          wUp: uniform([numExperts, x, ffn], s.seed + 2),
          wDown: uniform([numExperts, ffn, x], s.seed + 3),
        }
        const latentOf = (copy: (t: Tensor.Tensor) => Tensor.Tensor) => {
          if (s.latent === undefined) return {}
          const into = copy(uniform([h, s.latent], s.seed + 4))
          const out = copy(uniform([s.latent, h], s.seed + 5))
          return { latent: s.latentBias ? { into, out, bias: { into: copy(uniform([s.latent], s.seed + 6)), out: copy(uniform([h], s.seed + 7)) } } : { into, out } }
        }
        const xs = Array.from({ length: c.world }, (_, r) => uniform([s.tokens[r] as number, h], s.seed + 10 + r))
        const rs = Array.from({ length: c.world }, (_, r) => uniform([s.tokens[r] as number, h], s.seed + 30 + r))

        // Reference on one rank.
        const tape = Tape.make()
        const refW = {
          router: tape.parameter(Tensor.detachCopy(full.router)),
          wGate: tape.parameter(Tensor.detachCopy(full.wGate)),
          wUp: tape.parameter(Tensor.detachCopy(full.wUp)),
          wDown: tape.parameter(Tensor.detachCopy(full.wDown)),
          ...latentOf((u) => tape.parameter(Tensor.detachCopy(u))),
        }
        const refX = xs.map((x) => tape.parameter(Tensor.detachCopy(x)))
        const refOut = referenceMoe(refX, refW, moe)
        tape.backward(Reduce.sumAll(Elementwise.mul(refOut, Shape.concat(rs, 0))))

        const results = await Job.runPromise({ world: c.world, timeoutMs: 10_000 }, (rank) =>
          Effect.gen(function* () {
            const p = Folding.place(fold, rank)
            const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
            const t = Tape.make({ name: `rank ${rank}` })
            const experts: [number, number] = [p.ep * s.perExpert, (p.ep + 1) * s.perExpert]
            const w = {
              router: t.parameter(Tensor.detachCopy(full.router)),
              experts: {
                wGate: t.parameter(expertShard(full.wGate, experts, p.etp, c.etp, true)),
                wUp: t.parameter(expertShard(full.wUp, experts, p.etp, c.etp, true)),
                wDown: t.parameter(expertShard(full.wDown, experts, p.etp, c.etp, false)),
              },
              ...latentOf((u) => t.parameter(Tensor.detachCopy(u))),
            }
            const x = t.parameter(Tensor.detachCopy(xs[rank] as Tensor.Tensor))
            const { output } = yield* MoeLayer.forward(x, w, moe, groups)
            yield* t.backwardEffect(Reduce.sumAll(Elementwise.mul(output, rs[rank] as Tensor.Tensor)))
            const grad = (u: Tensor.Tensor) => (u.grad === undefined ? new Array<number>(u.size).fill(0) : Tensor.toArray(u.grad))
            const l = w.latent
            const dLatent = l === undefined ? [] : [l.into, l.out, ...(l.bias === undefined ? [] : [l.bias.into, l.bias.out])].map(grad)
            return {
              p,
              out: Tensor.toArray(output),
              dx: grad(x),
              dRouter: grad(w.router),
              dGate: grad(w.experts.wGate),
              dUp: grad(w.experts.wUp),
              dDown: grad(w.experts.wDown),
              dLatent,
            }
          }),
        )
        let row = 0
        const refOutArr = Tensor.toArray(refOut)
        results.forEach((r, rank) => {
          const n = (s.tokens[rank] as number) * h
          near(r.out, refOutArr.slice(row, row + n), `output of rank ${rank}`)
          near(r.dx, Tensor.toArray(refX[rank]?.grad as Tensor.Tensor), `dx of rank ${rank}`)
          row += n
        })
        near(sumArrays(results.map((r) => r.dRouter)), Tensor.toArray(refW.router.grad as Tensor.Tensor), "router gradient")
        // The latent projections are whole on every rank: their gradients sum over the ranks, as the router's.
        const l = refW.latent
        const refLatent = l === undefined ? [] : [l.into, l.out, ...(l.bias === undefined ? [] : [l.bias.into, l.bias.out])]
        refLatent.forEach((u, i) =>
          near(sumArrays(results.map((r) => r.dLatent[i] as ReadonlyArray<number>)), Tensor.toArray(u.grad as Tensor.Tensor), `latent projection ${i} gradient`),
        )
        for (let ep = 0; ep < c.ep; ep++) {
          for (let etp = 0; etp < c.etp; etp++) {
            const holders = results.filter((r) => r.p.ep === ep && r.p.etp === etp)
            const experts: [number, number] = [ep * s.perExpert, (ep + 1) * s.perExpert]
            near(sumArrays(holders.map((r) => r.dGate)), Tensor.toArray(expertShard(refW.wGate.grad as Tensor.Tensor, experts, etp, c.etp, true)), `wGate ep ${ep} etp ${etp}`)
            near(sumArrays(holders.map((r) => r.dUp)), Tensor.toArray(expertShard(refW.wUp.grad as Tensor.Tensor, experts, etp, c.etp, true)), `wUp ep ${ep} etp ${etp}`)
            near(sumArrays(holders.map((r) => r.dDown)), Tensor.toArray(expertShard(refW.wDown.grad as Tensor.Tensor, experts, etp, c.etp, false)), `wDown ep ${ep} etp ${etp}`)
          }
        }
      }),
      { numRuns: 60 },
    )
  })
})
