// The barrel: every module is reachable as a namespace from src/tensor/index.ts, and a small
// model step runs through it end to end (embedding -> rmsNorm -> rope -> attention -> loss).
import { describe, expect, test } from "vitest"
import * as T from "../../src/tensor/index.js"

describe("tensor barrel", () => {
  test("exports every namespace", () => {
    const names = [
      "Tensor",
      "Tape",
      "DType",
      "Device",
      "TensorError",
      "Autograd",
      "Kernels",
      "Reference",
      "Elementwise",
      "Reduce",
      "Shape",
      "Matmul",
      "Softmax",
      "Norm",
      "Activation",
      "TopK",
      "Gather",
      "Loss",
      "Rope",
      "Attention",
    ]
    for (const name of names) expect(Object.keys(T), name).toContain(name)
    expect(T.Kernels.forDType("float64", T.Reference.reference).name).toBe("reference")
  })

  test("a tiny attention block trains: every parameter gets a finite gradient", () => {
    const tape = T.Tape.make({ guardNonFinite: true })
    const [v, h, s] = [7, 4, 3]
    const init = (shape: Array<number>, k: number) =>
      tape.parameter(
        T.Tensor.fromArray(
          Array.from({ length: T.Tensor.sizeOf(shape) }, (_, i) => Math.sin(i * 1.3 + k)),
          shape,
          { dtype: "float64" },
        ),
      )
    const table = init([v, h], 1)
    const norm = init([h], 2)
    const wq = init([h, h], 3)
    const head = init([h, v], 4)
    const ids = Int32Array.of(1, 5, 2)
    const x = T.Norm.rmsNorm(T.Gather.embedding(table, ids), norm)
    const q = T.Rope.rope(T.Shape.reshape(T.Matmul.matmul(x, wq), [1, s, 2, 2]))
    const k = T.Rope.rope(T.Shape.reshape(x, [1, s, 2, 2]))
    const a = T.Attention.attention(q, k, k)
    const mixed = T.Activation.swiglu(T.Shape.reshape(a, [s, h]), x)
    const logits = T.Matmul.matmul(mixed, head)
    const loss = T.Loss.crossEntropy(logits, Int32Array.of(5, 2, -100))
    tape.backward(loss)
    for (const p of [table, norm, wq, head]) {
      expect(p.grad?.shape).toEqual(p.shape)
      expect(T.Tensor.toArray(p.grad as T.Tensor.Tensor).every(Number.isFinite)).toBe(true)
    }
    expect(T.TopK.topk(logits, 2).indices.length).toBe(2 * s)
  })
})
