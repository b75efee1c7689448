// The element-wise CUDA kernels (cuda/src/kernels/elementwise_cuda.cu) and their CPU twins
// (CpuElementwise: binary with the same / suffix / rows broadcasts, scale, the row and suffix
// sums), run on either executor of kernelTwins.ts: the host runs their element functions
// (elementwise_element.h) through pleat_kernel_emulation, the device the kernels through the
// CUDA addon's bindings (with narrowToFloat32, float64 to float32 as a typed array's set does, on
// the device only: its element function is one cast). No exp is involved: bit for bit on both.
import fc from "fast-check"
import { BroadcastKind, elementwiseKernels } from "../../src/native/CpuElementwise.js"
import { cudaArrays } from "../../src/native/CudaArrays.js"
import { big, emulate, expectSame, floats, runnable, type Runnable, type Twin } from "./kernelTwins.js"

interface Case {
  readonly op: number
  readonly kind: number
  readonly rows: number
  readonly width: number
  readonly s: number
  readonly seed: number
}

const cpu = () => {
  const k = elementwiseKernels()
  if (k === undefined) throw new Error("the CPU addon's element-wise kernels are not built")
  return k
}

const device = () => {
  const a = cudaArrays()
  if ("why" in a) throw new Error(a.why)
  return a.addon
}

const elementwise: Twin<Case> = {
  name: "elementwise: binary (add, sub, mul, div) with each broadcast, scale, row sums and suffix sums: the CPU's bits",
  cases: (on) =>
    fc.record({
      op: fc.integer({ min: 0, max: 3 }),
      kind: fc.constantFrom(BroadcastKind.same, BroadcastKind.suffix, BroadcastKind.rows),
      rows: fc.integer({ min: 1, max: big(on, 120, 3000) }),
      width: fc.integer({ min: 1, max: big(on, 90, 700) }),
      s: fc.double({ min: -8, max: 8, noNaN: true }),
      seed: fc.integer(),
    }),
  check: ({ op, kind, rows, width, s, seed }, on) => {
    const n = rows * width
    const a = floats(n, seed)
    const b = floats(kind === BroadcastKind.same ? n : kind === BroadcastKind.suffix ? width : rows, seed + 1)
    const want = { binary: new Float32Array(n), scaled: new Float32Array(n), rows: new Float32Array(rows), suffix: new Float32Array(width) }
    cpu().binary(op, kind, a, b, want.binary, kind === BroadcastKind.same ? 0 : width)
    cpu().scale(a, s, want.scaled)
    cpu().sumRows(a, want.rows, width)
    cpu().sumSuffix(a, want.suffix, width)
    let got: typeof want
    if (on === "host") {
      const [binary, scaled, r, suffix] = emulate(
        "elementwise",
        [Float64Array.of(op, kind, n, width, s), a, b],
        [
          ["f32", n],
          ["f32", n],
          ["f32", rows],
          ["f32", width],
        ],
      )
      got = {
        binary: binary as Float32Array<ArrayBuffer>,
        scaled: scaled as Float32Array<ArrayBuffer>,
        rows: r as Float32Array<ArrayBuffer>,
        suffix: suffix as Float32Array<ArrayBuffer>,
      }
    } else {
      got = { binary: new Float32Array(n), scaled: new Float32Array(n), rows: new Float32Array(rows), suffix: new Float32Array(width) }
      device().elementwiseBinary(op, kind, a, b, got.binary, kind === BroadcastKind.same ? 0 : width)
      device().elementwiseScale(a, s, got.scaled)
      device().sumRows(a, got.rows, width)
      device().sumSuffix(a, got.suffix, width)
      // float64 to float32 on the device: a typed array's set (nearest even), on values that need rounding.
      const wide = Float64Array.from(a, (v, i) => v * (1 + 2 ** -30) + i * 2 ** -40)
      const narrowed = new Float32Array(n)
      device().narrowToFloat32(wide, narrowed)
      expectSame(narrowed, Float32Array.from(wide))
    }
    expectSame(got.binary, want.binary)
    expectSame(got.scaled, want.scaled)
    expectSame(got.rows, want.rows)
    expectSame(got.suffix, want.suffix)
  },
}

/** The element-wise twins, for both executors. */
export const elementwiseTwins: ReadonlyArray<Runnable> = [runnable(elementwise)]
