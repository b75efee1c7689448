/**
 * pleat/comm: groups, the Communicator service a rank program talks to, the collectives' one
 * semantics (with the chunked all-to-all's placement and the receiver's sum onto tokens), the
 * differentiable collectives autograd runs through, and their errors.
 */
export * as Chunked from "./Chunked.js"
export * as Collective from "./Collective.js"
export * as CommError from "./CommError.js"
export * as Communicator from "./Communicator.js"
export * as Differentiable from "./Differentiable.js"
export * as Group from "./Group.js"
export * as ReceiveCombine from "./ReceiveCombine.js"
