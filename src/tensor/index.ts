/**
 * The tensor library in one import: core types, autograd, kernels and every op, as namespaces.
 *
 *   import { Tensor, Tape, Softmax, Attention } from "./tensor/index.js"
 *   const y = Softmax.softmax(Tensor.fromArray([1, 2, 3], [3]))
 *
 * `Reference` is the TypeScript kernel set that `Kernels.forDType` falls back to.
 */
export * as Autograd from "./Autograd.js"
export * as Device from "./Device.js"
export * as DeviceRuntime from "./device/DeviceRuntime.js"
export * as Place from "./device/Place.js"
export * as DType from "./DType.js"
export * as GradAccumulator from "./GradAccumulator.js"
export * as Tape from "./Tape.js"
export * as Tensor from "./Tensor.js"
export * as TensorError from "./TensorError.js"
export * as AdamwInto from "./kernels/AdamwInto.js"
export * as AttentionSinks from "./kernels/AttentionSinks.js"
export * as ElementwiseInto from "./kernels/ElementwiseInto.js"
export * as Kernels from "./kernels/Kernels.js"
export * as Reference from "./kernels/Reference.js"
export * as SwapDims from "./kernels/SwapDims.js"
export * as Activation from "./ops/Activation.js"
export * as Attention from "./ops/Attention.js"
export * as Elementwise from "./ops/Elementwise.js"
export * as GatedActivation from "./ops/GatedActivation.js"
export * as Gather from "./ops/Gather.js"
export * as Loss from "./ops/Loss.js"
export * as Matmul from "./ops/Matmul.js"
export * as Norm from "./ops/Norm.js"
export * as Reduce from "./ops/Reduce.js"
export * as Rope from "./ops/Rope.js"
export * as RopeScaling from "./ops/RopeScaling.js"
export * as Shape from "./ops/Shape.js"
export * as Softmax from "./ops/Softmax.js"
export * as TopK from "./ops/TopK.js"
export * as Transfer from "./ops/Transfer.js"
