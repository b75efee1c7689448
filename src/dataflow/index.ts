/**
 * pleat/dataflow: typed operators and the links between them, tensor layouts, and the
 * tensor-parallel building blocks (parallel linear layers, the SwiGLU MLP).
 */
export * as DenseMlp from "./DenseMlp.js"
export * as LaidCollective from "./LaidCollective.js"
export * as Layout from "./Layout.js"
export * as Link from "./Link.js"
export * as Operator from "./Operator.js"
export * as ParallelLinear from "./ParallelLinear.js"
export * as TensorLayout from "./TensorLayout.js"
