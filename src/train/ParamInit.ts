/**
 * ParamInit: the initial value of a parameter, from the run's seed and the parameter's name alone
 * (Params.ParamSpec: its std, or ones for norms, or zeros for biases), so that a run on any
 * mapping and a run on one rank start from the same weights: what makes `pleat verify` and
 * resharded checkpoints possible. Each rank makes only the shards it holds (`initialSlice`), each
 * element the same as in the whole (NormalStream: element i of a stream at any offset).
 */
import * as DType from "../tensor/DType.js"
import * as NormalStream from "../tensor/NormalStream.js"
import * as Tensor from "../tensor/Tensor.js"
import * as Params from "./Params.js"

/** A 32-bit hash of a string (FNV-1a), to seed each parameter's stream from its name. */
const hash = (s: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0
  return h
}

/** The seed of a parameter's stream: its name's hash mixed with the run's seed. */
const streamSeed = (spec: Params.ParamSpec, seed: number): number => (hash(spec.name) ^ Math.imul(seed, 0x9e3779b1)) >>> 0

/**
 * The initial value of the region `ranges` of a parameter (its shard on a rank): equal to
 * `slice(initial(spec, seed, dtype), ranges)` without making the whole.
 * @category constructors
 */
export const initialSlice = (spec: Params.ParamSpec, seed: number, dtype: DType.DType, ranges: ReadonlyArray<[number, number]>): Tensor.Tensor => {
  const shape = ranges.map(([a, b]) => b - a)
  const out = DType.allocateUninitialized(dtype, Tensor.sizeOf(shape))
  if (spec.zero === true) out.fill(0)
  else if (spec.std === 0) out.fill(1)
  else Params.forEachRun(spec.shape, ranges, (from, to, length) => NormalStream.fill(streamSeed(spec, seed), from, length, spec.std, out, to))
  return Tensor.fromStorage(out, shape)
}

/**
 * The full initial value of a parameter (the same on every mapping).
 * @category constructors
 */
export const initial = (spec: Params.ParamSpec, seed: number, dtype: DType.DType): Tensor.Tensor =>
  initialSlice(
    spec,
    seed,
    dtype,
    spec.shape.map((d): [number, number] => [0, d]),
  )
