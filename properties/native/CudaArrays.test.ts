// The CUDA addon's device arrays and the products device tensors run on (cuda/src/
// device_array_binding.cc, cublas_products_binding.cc, cuda_elementwise_binding.cc): where no GPU runs (here, CI) each checks
// its arguments first and then throws "no device:", and the CUDA runtime and `pleat train
// --device cuda` say why there is none (exit 2, one line). On the GPU machine scripts/device-check
// runs them against the CPU kernels (scripts/device-check-train.mjs).
import { describe, expect, test } from "vitest"
import * as Addon from "../../src/native/Addon.js"
import * as Cuda from "../../src/native/Cuda.js"
import { cudaArrays } from "../../src/native/CudaArrays.js"
import { cudaRuntime } from "../../src/tensor/device/CudaRuntime.js"
import { refused } from "../cli/refused.js"

const built = Addon.isBuilt("pleat_cuda")
const status = Cuda.cudaStatus()

describe.runIf(built && !status.available)("device arrays without a device", () => {
  test('arguments are checked first, then "no device:"', () => {
    const loaded = cudaArrays()
    if ("why" in loaded) throw new Error(loaded.why)
    const a = loaded.addon
    const f = (n: number) => new Float32Array(n)
    expect(() => a.deviceArrayNew(4, "int32" as "float32")).toThrow(/dtype must be "float32" or "float64"/)
    expect(() => a.deviceArrayNew(-1, "float32")).toThrow(/length must be an integer >= 0/)
    expect(() => a.deviceArrayNew(4, "float32")).toThrow(/^no device: /)
    expect(() => a.deviceArrayCopyIn({} as never, f(1))).toThrow(/array must be a device array/)
    expect(() => a.deviceArrayCopyOutAsync({} as never, f(1))).toThrow(/deviceArrayCopyOutAsync: array must be a device array/)
    expect(() => a.deviceArrayAdd({} as never, {} as never, {} as never)).toThrow(/a must be a device array/)
    expect(() => a.deviceArrayCopyRange({} as never, 0, {} as never, 0, 1)).toThrow(/dst must be a device array/)
    expect(() => a.softmaxRows(f(6), f(5), 2, 3)).toThrow(/x and out must hold rows \* cols = 6 elements, got 6 and 5/)
    const x = f(6)
    expect(() => a.softmaxRows(x, x, 2, 3)).toThrow(/out may not be x/)
    expect(() => a.softmaxRows(f(6), f(6), 2, 3)).toThrow(/^no device: /)
    expect(() => (a.deviceArrayCopyRange as (...x: Array<unknown>) => void)({} as never, 0, {} as never)).toThrow(/deviceArrayCopyRange/)
    expect(() => a.matmul(f(3), f(4), f(4), 1, 2, 2, 2, false, false, 4, 4, false)).toThrow(/out needs batch \* m \* n elements, a \(batch - 1\) \* strideA \+ m \* k/)
    expect(() => a.matmul(f(8), f(4), f(8), 2, 2, 2, 2, false, false, 4, 0, true)).toThrow(/^no device: /)
    // A bf16 run's products: the last argument, a boolean when given.
    expect(() => a.matmul(f(8), f(4), f(8), 2, 2, 2, 2, false, false, 4, 0, true, 1 as unknown as boolean)).toThrow(/matmul: bf16 must be a boolean/)
    expect(() => a.matmul(f(8), f(4), f(8), 2, 2, 2, 2, false, false, 4, 0, true, true)).toThrow(/^no device: /)
    expect(() => a.groupedRows(f(4), f(8), f(4), Int32Array.of(1, 1), 2, 2, true, "yes" as unknown as boolean)).toThrow(/groupedRows: bf16 must be a boolean/)
    expect(() => a.groupedWeights(f(4), f(4), f(8), Int32Array.of(0, 2), 2, 2, false, true)).toThrow(/^no device: /)
    expect(() => a.groupedRows(f(4), f(8), f(4), Int32Array.of(3, -1), 2, 2, false)).toThrow(/rows\[1\] = -1 is negative/)
    expect(() => a.groupedRows(f(4), f(8), f(5), Int32Array.of(1, 1), 2, 2, true)).toThrow(/out sum\(rows\) \* n/)
    expect(() => a.groupedRows(f(4), f(8), f(4), Int32Array.of(1, 1), 2, 2, true)).toThrow(/^no device: /)
    expect(() => a.groupedWeights(f(4), f(4), f(7), Int32Array.of(0, 2), 2, 2, false)).toThrow(/out rows.length \* m \* n/)
    expect(() => a.groupedWeights(f(4), f(4), f(8), Int32Array.of(0, 2), 2, 2, false)).toThrow(/^no device: /)
    expect(() => a.elementwiseBinary(4, 0, f(4), f(4), f(4), 0)).toThrow(/op must be 0-3/)
    expect(() => a.elementwiseBinary(2, 2, f(6), f(2), f(6), 2)).toThrow(/b a's \(same\), width \(suffix\) or a.length \/ width \(rows\)/)
    expect(() => a.elementwiseBinary(2, 2, f(6), f(3), f(6), 2)).toThrow(/^no device: /)
    expect(() => a.elementwiseScale(f(4), 2, f(3))).toThrow(/out must have a's length/)
    expect(() => a.elementwiseScale(f(4), 2, f(4))).toThrow(/^no device: /)
    expect(() => a.sumRows(f(6), f(2), 2)).toThrow(/whole rows of width/)
    expect(() => a.sumRows(f(6), f(3), 2)).toThrow(/^no device: /)
    expect(() => a.sumSuffix(f(6), f(3), 2)).toThrow(/multiple of width and out width long/)
    expect(() => a.sumSuffix(f(6), f(2), 2)).toThrow(/^no device: /)
    expect(() => a.narrowToFloat32(new Float64Array(3), f(2))).toThrow(/out must have src's length/)
    expect(() => a.narrowToFloat32(new Float64Array(2), f(2))).toThrow(/^no device: /)
    // The optimizer's and the transpose's and the scatter's bindings.
    expect(() => a.sumSquares(f(4), new Float64Array(2), 2)).toThrow(/at must be an index of out/)
    expect(() => a.sumSquares(f(4), f(2) as unknown as Float64Array, 0)).toThrow(/out must be a Float64Array/)
    expect(() => a.sumSquares(f(4), new Float64Array(2), 1)).toThrow(/^no device: /)
    expect(() => a.swapDims(f(6), f(6), 1, 2, 1, 2, 1)).toThrow(/hold a \* n0 \* b \* n1 \* c = 4 elements/)
    expect(() => a.swapDims(f(6), f(6), 1, 2, 1.5, 2, 1)).toThrow(/b must be a whole number/)
    expect(() => a.swapDims(f(6), f(6), 1, 2, 1, 3, 1)).toThrow(/^no device: /)
    expect(() => a.roundBf16(f(3), f(2))).toThrow(RangeError)
    expect(() => a.roundBf16(f(3), f(2))).toThrow(/roundBf16: src and out must have the same length, got 3 and 2/)
    expect(() => a.roundBf16(f(3), new Float64Array(3) as unknown as Float32Array)).toThrow(TypeError)
    expect(() => a.roundBf16(f(3), new Float64Array(3) as unknown as Float32Array)).toThrow(/out must be a Float32Array/)
    expect(() => a.roundBf16(new Int32Array(3) as unknown as Float32Array, f(3))).toThrow(/src must be a Float32Array/)
    const shared = f(4)
    expect(() => a.roundBf16(shared.subarray(0, 3), shared.subarray(1, 4))).toThrow(/out and src overlap in memory but are not the same view/)
    expect(() => a.roundBf16(f(3), f(3))).toThrow(/^no device: /)
    expect(() => a.roundBf16(shared, shared)).toThrow(/^no device: /)
    expect(() => a.scatterAddRows(f(4), Int32Array.of(0, 5), f(6), 2)).toThrow(/index\[1\] = 5 is not a row of out of 3/)
    expect(() => a.scatterAddRows(f(5), Int32Array.of(0, 1), f(6), 2)).toThrow(/src must hold index.length \* cols/)
    expect(() => a.scatterAddRows(f(4), Int32Array.of(0, 2), f(6), 2)).toThrow(/^no device: /)
    expect(() => a.adamw(f(3), f(2), f(3), f(3), 0.9, 0.95, 0.1, 0.05, 1e-8, 0.1, 1, 0)).toThrow(/same length/)
  })

  test("the CUDA runtime says why there is none; pleat train --device cuda is refused in one line naming the flag and the fix", () => {
    const r = cudaRuntime(0)
    expect("why" in r && r.why).toMatch(/no device/)
    expect(cudaRuntime(1)).toEqual({ why: expect.stringMatching(/computes on its one GPU, cuda:0/) })
    expect(refused(["train", "--device", "cuda", "--steps", "1"])).toMatch(/--device: "cuda" has no GPU runtime here \(no device.*\); fix: run on a machine with a GPU/)
    expect(refused(["train", "--device", "tpu"])).toMatch(/--device/)
  })
})
