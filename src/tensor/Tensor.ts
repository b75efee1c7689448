/**
 * Tensor: a value with a shape, a dtype, a device and contiguous row-major storage.
 *
 * Storage is a typed array that native kernels use without copying. A tensor that takes part in
 * autograd knows its Tape (one per rank: many ranks live in one process, so there is no global
 * tape). Leaves are tensors made by the user (parameters, inputs); every other tensor is the
 * output of an op recorded on its tape. Tensors are never mutated by ops; `grad` of a leaf is
 * the one field that changes (gradients accumulate into it).
 *
 * A tensor on a device (`cuda:N`, `sim:N`) holds its values in a device array, a host copy, or
 * both, and copies between them when something needs the other (counted in its runtime's
 * `transfers`): ops with a device path read `deviceArray` (uploading the host copy if that is all
 * there is); everything else reads `data`, the host copy (downloaded if there is none). `data`
 * may be written (leaves are: optimizers, accumulators), so reading it gives the device copy up
 * and the next device op uploads the host's values again; `readHost` reads without giving it up.
 */
import * as Device from "./Device.js"
import { type DeviceArray, type DeviceRuntime, downloaded, downloadedAsync } from "./device/DeviceRuntime.js"
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
  readonly device: Device.Device
  readonly tape: Tape | undefined
  readonly requiresGrad: boolean
  /** The op that made it, or "leaf". */
  readonly op: string
  /** The element type. */
  readonly dtype: DType.DType
  /** The number of elements. */
  readonly size: number
  /** The accumulated gradient of a leaf that requires grad (undefined until a backward pass). */
  grad: Tensor | undefined
  #host: DType.Storage | undefined
  #resident: DeviceArray | undefined
  /** A download under way (readHostAsync). */
  #arriving: Promise<DType.Storage> | undefined

  constructor(fields: {
    readonly shape: ReadonlyArray<number>
    /** Host storage; or `resident`, the values in a device array of `device`. */
    readonly data?: DType.Storage | undefined
    readonly resident?: DeviceArray | undefined
    readonly device?: Device.Device | undefined
    readonly tape?: Tape | undefined
    readonly requiresGrad?: boolean
    readonly op?: string
  }) {
    const size = sizeOf(fields.shape)
    for (const d of fields.shape) {
      if (!Number.isInteger(d) || d < 0) throw TensorError.shape("tensor", `dims must be integers >= 0, got ${TensorError.formatShape(fields.shape)}`)
    }
    const device = fields.device ?? Device.cpu
    if (fields.data === undefined && fields.resident === undefined) throw TensorError.shape("tensor", "needs its values: host storage or a device array")
    for (const values of [fields.data, fields.resident]) {
      if (values !== undefined && values.length !== size) {
        throw TensorError.shape("tensor", `shape ${TensorError.formatShape(fields.shape)} holds ${size} elements but the storage has ${values.length}`)
      }
    }
    if (fields.resident !== undefined && !Device.same(fields.resident.runtime.device, device)) {
      throw TensorError.shape("tensor", `a device array of ${Device.format(fields.resident.runtime.device)} for a tensor on ${Device.format(device)}`)
    }
    this.shape = Object.freeze([...fields.shape])
    this.#host = fields.data
    this.#resident = fields.resident
    this.dtype = fields.data !== undefined ? DType.of(fields.data) : (fields.resident as DeviceArray).dtype
    this.size = size
    this.device = device
    this.tape = fields.tape
    this.requiresGrad = fields.requiresGrad ?? false
    this.op = fields.op ?? "leaf"
    this.grad = undefined
  }

  /**
   * The host storage, to read or to write: on a device, downloaded when the tensor has no host
   * copy, and the device copy is given up (the caller may write; see the header).
   */
  get data(): DType.Storage {
    const host = this.#host ?? this.readHost()
    this.#resident = undefined
    return host
  }

  /** The host storage, to read only: on a device, downloaded once and the device copy kept. */
  readHost(): DType.Storage {
    if (this.#host !== undefined) return this.#host
    this.#host = downloaded(this.#resident as DeviceArray)
    return this.#host
  }

  /**
   * `readHost` without blocking the JS thread: the host copy once it has arrived (at once when
   * there is one). Until then `readHost` would download again, synchronously.
   */
  readHostAsync(): Promise<DType.Storage> {
    if (this.#host !== undefined) return Promise.resolve(this.#host)
    this.#arriving ??= downloadedAsync(this.#resident as DeviceArray).then(
      (host) => {
        this.#arriving = undefined
        this.#host ??= host
        return this.#host
      },
      (error: unknown) => {
        // A failed read is not remembered: the next one tries again.
        this.#arriving = undefined
        throw error
      },
    )
    return this.#arriving
  }

  /** The values in a device array of `runtime` (this tensor's device): uploaded when there is none. */
  deviceArray(runtime: DeviceRuntime): DeviceArray {
    if (this.#resident !== undefined) return this.#resident
    if (!Device.same(runtime.device, this.device)) throw TensorError.shape("deviceArray", `${this} is not on ${Device.format(runtime.device)}`)
    this.#resident = runtime.upload(this.#host as DType.Storage)
    return this.#resident
  }

  /**
   * A tensor over the same values (the host storage and the device array shared, no copy) with
   * its own shape of the same size, tape and requiresGrad: views (reshape), detached tensors,
   * and the leaves a tape makes of parameters. Values are read through aliases, never written:
   * writing one's `data` leaves the others' device copy stale.
   */
  alias(options: { readonly shape?: ReadonlyArray<number>; readonly tape?: Tape | undefined; readonly requiresGrad?: boolean; readonly op?: string } = {}): Tensor {
    return new Tensor({
      shape: options.shape ?? this.shape,
      data: this.#host,
      resident: this.#resident,
      device: this.device,
      tape: options.tape,
      requiresGrad: options.requiresGrad ?? false,
      ...(options.op === undefined ? {} : { op: options.op }),
    })
  }

  /** The values where they are now, without a copy: the device array when resident, else the host storage. */
  values(): DType.Storage | DeviceArray {
    return this.#resident ?? (this.#host as DType.Storage)
  }

  /** The host storage when there is one now (no download). */
  get hostStorage(): DType.Storage | undefined {
    return this.#host
  }

  /** Whether the values are in device memory now (no upload needed). */
  get isResident(): boolean {
    return this.#resident !== undefined
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
export const detachCopy = (t: Tensor): Tensor => fromStorage(DType.copyOf(t.readHost()), t.shape, { device: t.device })

/**
 * The same storage, detached from autograd (no copy).
 * @category constructors
 */
export const detach = (t: Tensor): Tensor => t.alias()
