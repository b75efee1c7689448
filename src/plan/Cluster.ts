/**
 * Cluster: the machine a plan is for (GPUs per node, links, peak FLOP/s, memory), by preset
 * name or from a JSON file.
 *
 * Where the preset numbers come from (NVIDIA's DGX H100 / H200 datasheets, as the issue states
 * them and as the paper's Eos cluster has them, shared/reference/paper.md 4.1):
 * - 8 GPUs per node; NVLink 4 at 900 GB/s per GPU counting both directions (450 GB/s each
 *   way, the paper's figure); 8 ConnectX-7 NICs of 400 Gb/s per node (one per GPU).
 * - 989.5 TFLOP/s dense bf16 per GPU (the paper's MFU peak), fp8 twice that.
 * - Memory: H100 80 GB, H200 141 GB (decimal GB, as sold); HBM3 3.35 TB/s, HBM3e 4.8 TB/s.
 *
 * A cluster file is one JSON object with the same keys as `Cluster` (all required except
 * `name`, `fp8Tflops` and `hbmGBps`, which default to the file's name, twice the bf16 peak and
 * 3350). Every number is per GPU except `nicsPerNode`.
 */
import * as Schema from "effect/Schema"

/**
 * A cluster's shape and speeds.
 * @category models
 */
export interface Cluster {
  readonly name: string
  readonly gpusPerNode: number
  /** Device memory per GPU, in decimal GB (80 for an H100). */
  readonly memoryGB: number
  /** Dense bf16 peak per GPU, TFLOP/s: the MFU denominator. */
  readonly peakTflops: number
  /** Dense fp8 peak per GPU, TFLOP/s. */
  readonly fp8Tflops: number
  /** NVLink bandwidth per GPU, GB/s, both directions together (NVIDIA's headline figure). */
  readonly nvlinkGBps: number
  /** Network cards per node, each `nicGbps` gigabits per second each way. */
  readonly nicsPerNode: number
  readonly nicGbps: number
  /** Device memory bandwidth per GPU, GB/s. */
  readonly hbmGBps: number
}

const h100: Cluster = {
  name: "dgx-h100",
  gpusPerNode: 8,
  memoryGB: 80,
  peakTflops: 989.5,
  fp8Tflops: 1979,
  nvlinkGBps: 900,
  nicsPerNode: 8,
  nicGbps: 400,
  hbmGBps: 3350,
}

/**
 * The presets by name.
 * @category constructors
 */
export const presets: Readonly<Record<string, Cluster>> = {
  "dgx-h100": h100,
  "dgx-h200": { ...h100, name: "dgx-h200", memoryGB: 141, hbmGBps: 4800 },
}

/**
 * The preset names, in the order of the help text.
 * @category configuration
 */
export const names = Object.keys(presets)

const Positive = Schema.Number.check(Schema.isFinite(), Schema.isGreaterThan(0))
const Count = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(1 << 20))

/**
 * The Schema of a cluster file.
 * @category models
 */
export const ClusterFile = Schema.Struct({
  name: Schema.optionalKey(Schema.String),
  gpusPerNode: Count,
  memoryGB: Positive,
  peakTflops: Positive,
  fp8Tflops: Schema.optionalKey(Positive),
  nvlinkGBps: Positive,
  nicsPerNode: Count,
  nicGbps: Positive,
  hbmGBps: Schema.optionalKey(Positive),
})

/**
 * A decoded cluster file as a cluster, with its defaults filled in.
 * @category constructors
 */
export const fromFile = (file: typeof ClusterFile.Type, fallbackName: string): Cluster => ({
  name: file.name ?? fallbackName,
  gpusPerNode: file.gpusPerNode,
  memoryGB: file.memoryGB,
  peakTflops: file.peakTflops,
  fp8Tflops: file.fp8Tflops ?? 2 * file.peakTflops,
  nvlinkGBps: file.nvlinkGBps,
  nicsPerNode: file.nicsPerNode,
  nicGbps: file.nicGbps,
  hbmGBps: file.hbmGBps ?? h100.hbmGBps,
})

/**
 * One direction of NVLink per GPU, bytes/s.
 * @category mapping
 */
export const nvlinkBytesPerSecond = (c: Cluster): number => (c.nvlinkGBps / 2) * 1e9

/**
 * The network bandwidth one GPU has out of its node, bytes/s (the node's NICs shared by its GPUs).
 * @category mapping
 */
export const networkBytesPerSecond = (c: Cluster): number => (c.nicsPerNode * c.nicGbps * 1e9) / 8 / c.gpusPerNode
