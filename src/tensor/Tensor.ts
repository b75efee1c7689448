/**
 * Tensor: a value with a shape, a dtype, a device and contiguous row-major storage.
 *
 * Storage is a typed array that native kernels use without copying. A tensor that takes part in
 * autograd knows its Tape (one per rank: many ranks live in one process, so there is no global
 * tape). Leaves are tensors made by the user (parameters, inputs); every other tensor is the
 * output of an op recorded on its tape. Tensors are never mutated by ops; `grad` of a leaf is
 * the one field that changes (gradients accumulate into it).
 */
import * as Device from "./Device.js"
import * as DType from "./DType.js"
import type { Tape } from "./Tape.js"
import * as TensorError from "./TensorError.js"

/**
 * How to make a tensor.
 * @category models
 */
export interface MakeOptions {
  readonly dtype?: DType.DType
  readonly device?: Device.Device
  /** Record ops on this tape; with `requiresGrad`, the tensor is a leaf whose grad is kept. */
  readonly tape?: Tape | undefined
  readonly requiresGrad?: boolean
  /** Back the storage by a SharedArrayBuffer. */
  readonly shared?: boolean
}

/**
 * A tensor.
 * @category models
 */
export class Tensor {
  readonly shape: ReadonlyArray<number>
  readonly data: DType.Storage
  readonly device: Device.Device
  readonly tape: Tape | undefined
  readonly requiresGrad: boolean
  /** The op that made it, or "leaf". */
  readonly op: string
  /** The accumulated gradient of a leaf that requires grad (undefined until a backward pass). */
  grad: Tensor | undefined

  constructor(fields: {
    readonly shape: ReadonlyArray<number>
    readonly data: DType.Storage
    readonly device?: Device.Device | undefined
    readonly tape?: Tape | undefined
    readonly requiresGrad?: boolean
    readonly op?: string
  }) {
    const size = sizeOf(fields.shape)
    for (const d of fields.shape) {
      if (!Number.isInteger(d) || d < 0) throw TensorError.shape("tensor", `dims must be integers >= 0, got ${TensorError.formatShape(fields.shape)}`)
    }
    if (fields.data.length !== size) {
      throw TensorError.shape("tensor", `shape ${TensorError.formatShape(fields.shape)} holds ${size} elements but the storage has ${fields.data.length}`)
    }
    this.shape = Object.freeze([...fields.shape])
    this.data = fields.data
    this.device = fields.device ?? Device.cpu
    this.tape = fields.tape
    this.requiresGrad = fields.requiresGrad ?? false
    this.op = fields.op ?? "leaf"
    this.grad = undefined
  }

  /** The element type. */
  get dtype(): DType.DType {
    return DType.of(this.data)
  }

  /** The number of elements. */
  get size(): number {
    return this.data.length
  }

  /** The number of dims. */
  get rank(): number {
    return this.shape.length
  }

  /** Whether the tensor was made by the user rather than by an op. */
  get isLeaf(): boolean {
    return this.op === "leaf"
  }

  toString(): string {
    return `Tensor(${TensorError.formatShape(this.shape)}, ${this.dtype}, ${Device.format(this.device)}${this.requiresGrad ? ", grad" : ""})`
  }
}

/**
 * The number of elements of a shape.
 * @category mapping
 */
export const sizeOf = (shape: ReadonlyArray<number>): number => shape.reduce((p, d) => p * d, 1)

/**
 * Whether two shapes are equal, dim by dim.
 * @category guards
 */
export const sameShape = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean => a.length === b.length && a.every((d, i) => d === b[i])

/**
 * A tensor over existing storage (no copy).
 * @category constructors
 */
export const fromStorage = (data: DType.Storage, shape: ReadonlyArray<number>, options: MakeOptions = {}): Tensor =>
  new Tensor({
    shape,
    data,
    device: options.device ?? Device.cpu,
    tape: options.tape,
    requiresGrad: options.requiresGrad ?? false,
  })

/**
 * A tensor holding a copy of `values`.
 * @category constructors
 */
export const fromArray = (values: ArrayLike<number>, shape: ReadonlyArray<number>, options: MakeOptions = {}): Tensor => {
  const data = DType.allocate(options.dtype ?? "float32", values.length, options.shared ?? false)
  data.set(values)
  return fromStorage(data, shape, options)
}

/**
 * A tensor of zeros.
 * @category constructors
 */
export const zeros = (shape: ReadonlyArray<number>, options: MakeOptions = {}): Tensor =>
  fromStorage(DType.allocate(options.dtype ?? "float32", sizeOf(shape), options.shared ?? false), shape, options)

/**
 * A tensor filled with one value.
 * @category constructors
 */
export const full = (shape: ReadonlyArray<number>, value: number, options: MakeOptions = {}): Tensor => {
  const t = zeros(shape, options)
  t.data.fill(value)
  return t
}

/**
 * The elements as a plain array (a copy).
 * @category mapping
 */
export const toArray = (t: Tensor): Array<number> => Array.from(t.data)

/**
 * The single value of a tensor of one element.
 * @category mapping
 */
export const item = (t: Tensor): number => {
  if (t.size !== 1) throw TensorError.shape("item", `needs exactly one element, got shape ${TensorError.formatShape(t.shape)}`)
  return t.data[0] as number
}

/**
 * A copy of the tensor detached from autograd (same dtype, device, new storage).
 * @category constructors
 */
export const detachCopy = (t: Tensor): Tensor => fromStorage(DType.copyOf(t.data), t.shape, { device: t.device })

/**
 * The same storage, detached from autograd (no copy).
 * @category constructors
 */
export const detach = (t: Tensor): Tensor => fromStorage(t.data, t.shape, { device: t.device })
