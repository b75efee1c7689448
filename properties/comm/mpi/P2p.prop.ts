// The MPI transport's p2p with an engine that carries some messages (comm/mpi/P2p.ts): whatever
// order the engine's receives finish in, each sender's messages reach the inbox in the order
// they arrived, frames behind an announcement waiting for it; the engine is asked for the
// announced ones in arrival order; a failed receive or an announcement without an engine fails
// the job, naming the sender.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import type { DataEngine } from "../../../src/comm/mpi/DataEngine.js"
import * as Frame from "../../../src/comm/mpi/Frame.js"
import * as P2p from "../../../src/comm/mpi/P2p.js"
import * as Device from "../../../src/tensor/Device.js"
import * as Tensor from "../../../src/tensor/Tensor.js"

const headOf = (k: number, announced: boolean): Frame.TensorHead => ({
  job: 1,
  tag: `t${k % 2}`,
  dtype: "float64",
  shape: [1],
  device: Device.cpu,
  ...(announced ? { engine: {} } : {}),
})
const messageOf = (from: number, k: number) => Tensor.fromArray([from * 1000 + k], [1], { dtype: "float64" })

/** A scripted engine: each receive waits until the test settles it. */
const scripted = () => {
  const asked: Array<{ from: number; settle: (ok: boolean) => void }> = []
  const engine: Pick<DataEngine, "backend" | "p2p"> = {
    backend: "nccl",
    p2p: {
      send: () => undefined,
      receive: (from) => new Promise((resolve, reject) => asked.push({ from, settle: (ok) => (ok ? resolve(messageOf(from, 0)) : reject(new Error("the link broke"))) })),
    },
  }
  return { engine, asked }
}

describe("p2p through an engine", () => {
  test("each sender's messages reach the inbox in arrival order, however the engine's receives finish", async () => {
    const arrival = fc.array(fc.record({ from: fc.integer({ min: 0, max: 2 }), announced: fc.boolean() }), { minLength: 1, maxLength: 12 })
    await fc.assert(
      fc.asyncProperty(arrival, fc.array(fc.nat(), { minLength: 12, maxLength: 12 }), async (frames, finishOrder) => {
        const delivered: Array<{ from: number; tag: string; value: number }> = []
        const failures: Array<string> = []
        const settlers: Array<() => void> = []
        const asked: Array<number> = []
        const engine: Pick<DataEngine, "backend" | "p2p"> = {
          backend: "nccl",
          p2p: {
            send: () => undefined,
            receive: (from, head) => {
              asked.push(from)
              const k = (head as Frame.TensorHead & { readonly seq: number }).seq
              return new Promise((resolve) => settlers.push(() => resolve(messageOf(from, k))))
            },
          },
        }
        const inbox = { deliver: (from: number, tag: string, t: Tensor.Tensor) => void delivered.push({ from, tag, value: t.data[0] as number }) }
        const p2p = P2p.make({ sendTensor: () => undefined }, 1, inbox, (why) => void failures.push(why), engine)
        const expected: Array<{ from: number; tag: string; value: number }> = []
        frames.forEach(({ from, announced }, k) => {
          const head = { ...headOf(k, announced), seq: k }
          p2p.arrived(from, { head, tensor: announced ? undefined : messageOf(from, k) })
          expected.push({ from, tag: head.tag, value: from * 1000 + k })
        })
        expect(asked).toEqual(frames.filter((f) => f.announced).map((f) => f.from))
        // Finish the engine's receives in a drawn order.
        const order = settlers.map((s, i) => ({ s, key: finishOrder[i] ?? 0, i })).sort((a, b) => a.key - b.key || a.i - b.i)
        for (const { s } of order) {
          s()
          await new Promise((resolve) => setImmediate(resolve))
        }
        for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
        expect(failures).toEqual([])
        for (const from of [0, 1, 2]) expect(delivered.filter((d) => d.from === from)).toEqual(expected.filter((d) => d.from === from))
      }),
      { numRuns: 200 },
    )
  })

  test("a failed receive fails the job naming the sender, before the frame behind it is handed on", async () => {
    const { engine, asked } = scripted()
    const log: Array<string> = []
    const inbox = { deliver: (from: number, _tag: string, t: Tensor.Tensor) => void log.push(`deliver ${from}:${t.data[0]}`) }
    const p2p = P2p.make({ sendTensor: () => undefined }, 1, inbox, (why) => void log.push(why), engine)
    p2p.arrived(2, { head: headOf(0, true), tensor: undefined })
    p2p.arrived(2, { head: headOf(1, false), tensor: messageOf(2, 1) })
    p2p.arrived(1, { head: headOf(2, false), tensor: messageOf(1, 2) })
    expect(log).toEqual(["deliver 1:1002"]) // another sender's frame does not wait
    asked[0]?.settle(false)
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    // (The real inbox is closed by the failure and drops what comes after.)
    expect(log).toEqual(["deliver 1:1002", "nccl receive from rank 2 failed: the link broke", "deliver 2:2001"])
  })

  test("an announcement on a rank without an engine fails the job at once, naming the sender", () => {
    const failures: Array<string> = []
    const p2p = P2p.make({ sendTensor: () => undefined }, 1, { deliver: () => undefined }, (why) => void failures.push(why))
    p2p.arrived(3, { head: headOf(0, true), tensor: undefined })
    expect(failures).toEqual(["rank 3 announced a message whose values an engine carries, and this rank has none"])
  })

  test("post: what the engine carries goes as an announcement without values, the rest as a tensor frame", () => {
    const sent: Array<{ to: number; frame: Uint8Array }> = []
    const engine: Pick<DataEngine, "backend" | "p2p"> = {
      backend: "nccl",
      p2p: { send: (_to, t) => (t.size > 2 ? { link: "ab" } : undefined), receive: () => Promise.reject(new Error("unused")) },
    }
    const p2p = P2p.make({ sendTensor: (to, frame) => void sent.push({ to, frame }) }, 1, { deliver: () => undefined }, () => undefined, engine)
    p2p.post(1, Tensor.fromArray([1, 2, 3, 4], [4], { dtype: "float64" }), "x")
    p2p.post(2, Tensor.fromArray([5, 6], [2], { dtype: "float64" }), "y")
    const [announced, framed] = sent.map((s) => ({ to: s.to, ...Frame.toTensor(s.frame.slice().buffer) }))
    expect(announced?.to).toBe(1)
    expect(announced?.tensor).toBeUndefined()
    expect(announced?.head).toMatchObject({ job: 1, tag: "x", shape: [4], dtype: "float64", engine: { link: "ab" } })
    expect(framed?.to).toBe(2)
    expect(framed?.head.engine).toBeUndefined()
    expect(Array.from(framed?.tensor?.data ?? [])).toEqual([5, 6])
  })
})
