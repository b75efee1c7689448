/**
 * Frame: how a p2p message travels between processes as one MPI message of bytes: a
 * little-endian u32 with the length of a JSON head, the head, zero padding to 8 bytes, then
 * the payload. A tensor frame's head holds the job, the tag, the dtype, the shape and the
 * device; its payload is the tensor's bytes. An announcement is a tensor frame without payload
 * whose head also says that a DataEngine carries the values (the NCCL backend's p2p between
 * device-resident tensors: comm/mpi/P2p.ts). A control frame (jobs, results, events between the
 * driver and the other processes) holds a v8-serialized value as payload.
 */
import * as v8 from "node:v8"
import type * as Device from "../../tensor/Device.js"
import type * as DType from "../../tensor/DType.js"
import * as Tensor from "../../tensor/Tensor.js"

/**
 * The head of a tensor frame.
 * @category models
 */
export interface TensorHead {
  readonly job: number
  readonly tag: string
  readonly dtype: DType.DType
  readonly shape: ReadonlyArray<number>
  readonly device: Device.Device
  /** Present on an announcement: the engine carries the values. */
  readonly engine?: EngineHead
}

/**
 * What an announcement tells the receiver's engine: the hex of a new link's id on the first
 * message from this sender (the link is made then), nothing after.
 * @category models
 */
export interface EngineHead {
  readonly link?: string
}

/**
 * A received tensor frame: its head, and its tensor (undefined for an announcement).
 * @category models
 */
export interface Received {
  readonly head: TensorHead
  readonly tensor: Tensor.Tensor | undefined
}

const pack = (head: object, payload: Uint8Array): Uint8Array => {
  const text = Buffer.from(JSON.stringify(head), "utf8")
  const start = Math.ceil((4 + text.length) / 8) * 8
  const out = new Uint8Array(start + payload.length)
  new DataView(out.buffer).setUint32(0, text.length, true)
  out.set(text, 4)
  out.set(payload, start)
  return out
}

const unpack = (bytes: ArrayBuffer): { readonly head: unknown; readonly start: number } => {
  const n = new DataView(bytes).getUint32(0, true)
  const head = JSON.parse(Buffer.from(bytes, 4, n).toString("utf8")) as unknown
  return { head, start: Math.ceil((4 + n) / 8) * 8 }
}

const bytesOf = (data: DType.Storage): Uint8Array => new Uint8Array(data.buffer, data.byteOffset, data.byteLength)

/**
 * A tensor as a frame (its bytes are copied: the sender may overwrite the tensor at once).
 * @category constructors
 */
export const tensor = (job: number, tag: string, t: Tensor.Tensor): Uint8Array =>
  pack({ job, tag, dtype: t.dtype, shape: t.shape, device: t.device } satisfies TensorHead, bytesOf(t.readHost()))

/**
 * An announcement of `t`, whose values `engine`'s carrier sends (no payload).
 * @category constructors
 */
export const announcement = (job: number, tag: string, t: Tensor.Tensor, engine: EngineHead): Uint8Array =>
  pack({ job, tag, dtype: t.dtype, shape: t.shape, device: t.device, engine } satisfies TensorHead, new Uint8Array(0))

/**
 * The tensor of a frame (its data a view on the received bytes, no copy); none for an announcement.
 * @category mapping
 */
export const toTensor = (bytes: ArrayBuffer): Received => {
  const { head, start } = unpack(bytes)
  const h = head as TensorHead
  if (h.engine !== undefined) return { head: h, tensor: undefined }
  const count = (bytes.byteLength - start) / (h.dtype === "float64" ? 8 : 4)
  const data = h.dtype === "float64" ? new Float64Array(bytes, start, count) : new Float32Array(bytes, start, count)
  return { head: h, tensor: Tensor.fromStorage(data, h.shape, { device: h.device }) }
}

/**
 * A control value as a frame (anything structured-cloneable).
 * @category constructors
 */
export const control = (value: unknown): Uint8Array => pack({}, v8.serialize(value))

/**
 * The value of a control frame.
 * @category mapping
 */
export const toControl = (bytes: ArrayBuffer): unknown => {
  const { start } = unpack(bytes)
  return v8.deserialize(new Uint8Array(bytes, start))
}
