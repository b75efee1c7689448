// Reads of device values on the host that do not block the JS thread (issue 15: "completion
// reaches Effect asynchronously"). On the simulated device an async download delivers the values
// the array held at the call, on a later turn of the event loop, and counts no wait; a tensor's
// async read is shared by its callers and kept as its host copy; a backward run as an Effect
// brings a device gradient down before a rule that reads it on the host (the router's probs), with
// the blocking walk's bits and no wait, where the blocking walk waits.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Router from "../../src/moe/Router.js"
import * as Device from "../../src/tensor/Device.js"
import { simulated } from "../../src/tensor/device/SimulatedRuntime.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import { sumAll } from "../../src/tensor/ops/Reduce.js"
import { hostValues, to } from "../../src/tensor/ops/Transfer.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const sim = Device.sim(0)
const runtime = simulated(0)

const values = (n: number, seed: number): Array<number> => {
  let s = seed
  return Array.from({ length: n }, () => ((s = (s * 48271) % 2147483647) / 2147483647) * 4 - 2)
}

describe("reading device values without blocking", () => {
  test("an async download gives the values at the call, later, without a wait; a tensor's read is shared and kept", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 1e6 }), fc.constantFrom("float32" as const, "float64" as const), async (n, seed, dtype) => {
        const first = values(n, seed)
        const array = runtime.upload(Tensor.fromArray(first, [n], { dtype }).readHost())
        const into = Tensor.zeros([n], { dtype }).readHost()
        const waits = runtime.transfers.waits
        const arrived = runtime.downloadAsync(array, into)
        // Written after the call: the copy must not see it; nor is anything delivered before the promise settles.
        runtime.kernels.copy(runtime.upload(Tensor.fromArray(values(n, seed + 1), [n], { dtype }).readHost()), array)
        expect(Array.from(into)).toEqual(new Array(n).fill(0))
        await arrived
        expect(Array.from(into)).toEqual(Array.from(Tensor.fromArray(first, [n], { dtype }).readHost()))

        const t = to(Tensor.fromArray(first, [n], { dtype }), sim)
        expect(t.hostStorage).toBeUndefined()
        const downloads = runtime.transfers.downloads
        const a = t.readHostAsync()
        expect(t.readHostAsync()).toBe(a)
        const host = await Effect.runPromise(hostValues(t))
        expect(host).toBe(await a)
        expect(t.readHost()).toBe(host)
        expect(runtime.transfers.downloads - downloads).toBe(1)
        expect(runtime.transfers.waits).toBe(waits)
        // The device copy is kept: a device op reads it without an upload.
        expect(t.isResident).toBe(true)
      }),
      { numRuns: 40 },
    )
  })

  test("a backward run as an Effect downloads the router's gradient without a wait and gives the blocking walk's bits", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          t: fc.integer({ min: 1, max: 12 }),
          e: fc.constantFrom(2, 4, 8),
          seed: fc.integer({ min: 1, max: 1e6 }),
          mode: fc.constantFrom("post", "pre", "sigmoid"),
        }),
        async ({ t, e, seed, mode }) => {
          const options: Router.RouterOptions = {
            topk: Math.min(2, e),
            scoreFunction: mode === "sigmoid" ? "sigmoid" : "softmax",
            preSoftmax: mode === "pre",
          }
          const run = async (walk: "effect" | "blocking") => {
            const tape = Tape.make()
            const x = Tensor.fromArray(values(t * e, seed), [t, e], { tape, requiresGrad: true })
            const logits = to(x, sim)
            await logits.readHostAsync()
            const probs = Router.probsFor(logits, Router.select(logits, options), options)
            // A device product of the probs: the router's gradient arrives resident on the device.
            const y = matmul(probs, Tensor.fromArray(values(e * 3, seed + 7), [e, 3], { device: sim }))
            await y.readHostAsync()
            const loss = sumAll(to(y, Device.cpu))
            const waits = runtime.transfers.waits
            if (walk === "effect") await Effect.runPromise(tape.backwardEffect(loss))
            else tape.backward(loss)
            return { grad: Array.from(x.grad?.readHost() ?? []), waits: runtime.transfers.waits - waits }
          }
          const effect = await run("effect")
          const blocking = await run("blocking")
          expect(effect.grad).toEqual(blocking.grad)
          expect(effect.grad.some((v) => v !== 0)).toBe(true)
          expect(effect.waits).toBe(0)
          // The same rule walked synchronously has to block for its gradient: what the Effect walk avoids.
          expect(blocking.waits).toBe(1)
        },
      ),
      { numRuns: 30 },
    )
  })
})
