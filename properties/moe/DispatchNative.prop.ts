// The all-to-all dispatcher in float32 on the native dispatch kernels (the permute with its probs,
// the chunked exchanges, the chunk sort over etp, the token-outer combine) gives the same bits
// as on the TypeScript path (PLEAT_NATIVE_DISPATCH=off), output and gradients of the tokens and
// the probs, over EP and ETP groups, ranks without tokens and experts without rows, with the
// probs applied by the experts or by the combine (each returned row weighted as it is summed).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Group from "../../src/comm/Group.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as AllToAllDispatcher from "../../src/moe/AllToAllDispatcher.js"
import type * as Dispatcher from "../../src/moe/Dispatcher.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import { dispatchKernels, setNativeDispatchOff } from "../../src/native/CpuDispatch.js"
import * as Job from "../../src/runtime/Job.js"
import { mul } from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { rng } from "../tensor/gradcheck.js"
import { seed } from "./arbitraries.js"
import { identityExperts } from "./identityExperts.js"

afterAll(() => setNativeDispatchOff(false))

const bitsOf = (t: Tensor.Tensor | undefined): Array<number> => (t === undefined ? [] : Array.from(new Uint32Array(Float32Array.from(t.data).buffer)))

describe.runIf(dispatchKernels() !== undefined)("native all-to-all dispatch", () => {
  test("output and gradients are the same bits as the TypeScript path", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom([1, 1], [2, 1], [4, 1], [1, 2], [2, 2]),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom(1, 5, 16, 70),
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 8, maxLength: 8 }),
        seed,
        fc.constantFrom<Dispatcher.ProbsAt>("experts", "combine"),
        async ([ep, etp], perExpert, h, tokens, s, probsAt) => {
          const world = (ep as number) * (etp as number)
          const config = ParallelConfig.make({ world, ep: ep as number, etp: etp as number })
          const numExperts = (ep as number) * perExpert
          const run = () =>
            Job.runPromise({ world }, (rank) =>
              Effect.gen(function* () {
                const t = tokens[rank] as number
                const r = rng(s + rank)
                const mask = Array.from({ length: t * numExperts }, () => (r() < 0.4 ? 1 : 0))
                const tape = Tape.make()
                const x = tape.parameter(
                  Tensor.fromArray(
                    Array.from({ length: t * h }, () => r() * 2 - 1),
                    [t, h],
                  ),
                )
                const probs = tape.parameter(
                  Tensor.fromArray(
                    mask.map((m) => m * r()),
                    [t, numExperts],
                  ),
                )
                const g = Tensor.fromArray(
                  Array.from({ length: t * h }, () => r() * 2 - 1),
                  [t, h],
                )
                const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
                const empty = Tensor.zeros([0, 0, 0])
                const { output } = yield* AllToAllDispatcher.run({
                  tokens: x,
                  probs,
                  map: RoutingMap.make(t, numExperts, mask),
                  numExperts,
                  experts: { wGate: empty, wUp: empty, wDown: empty },
                  groups,
                  compute: identityExperts,
                  probsAt,
                })
                yield* tape.backwardEffect(Reduce.sumAll(mul(output, g)))
                return [bitsOf(output), bitsOf(x.grad), bitsOf(probs.grad)]
              }),
            )
          setNativeDispatchOff(true)
          const reference = await run()
          setNativeDispatchOff(false)
          expect(await run()).toEqual(reference)
        },
      ),
      { numRuns: 40 },
    )
  })
})
