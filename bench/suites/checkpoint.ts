/**
 * checkpoint: how fast a rank's checkpoint is saved and read back, against the disk and the page
 * cache measured in the same run.
 *
 * One rank's state: 16 parameters of 1024 x 2048 float32 (128 MiB of values, 384 MiB with AdamW's
 * m and v), in a fresh directory under the system's temporary folder.
 * - write ceiling: the same 384 MiB written from one buffer and fsynced (Durable.writeFile).
 * - save: Checkpoint.writeShards, the shards streamed to the file with their SHA-256 fed as they go.
 * - read ceiling: the file read whole (readFileSync; from the page cache after the save).
 * - checksum: CheckpointChecksum.ofFile over the file, 16 MiB at a time.
 * - resume, whole: every parameter's values read back (Checkpoint.stored).
 * - resume, tp 8: one tp rank's eighth of each parameter, columns 1/8 wide (CheckpointRead.region:
 *   1024 runs of 1 KiB per parameter, read in windows), bytes delivered per second.
 * Each case is timed over 3 runs after one warm-up run; the ratio is to the ceiling of its kind.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import os from "node:os"
import path from "node:path"
import * as Checkpoint from "../../dist/train/Checkpoint.js"
import * as Checksum from "../../dist/train/CheckpointChecksum.js"
import * as CheckpointDirectory from "../../dist/train/CheckpointDirectory.js"
import * as Durable from "../../dist/train/CheckpointDurable.js"
import * as CheckpointRead from "../../dist/train/CheckpointRead.js"
import * as ModelConfig from "../../dist/train/ModelConfig.js"
import { type BenchContext, type BenchRecord, filled, gbPerSecond, record } from "../harness.js"

const rows = 1024
const cols = 2048
const count = 16
const repeats = 3

/** Mean seconds of `f` over `repeats` runs after one warm-up run. */
const seconds = (f: () => void): number => {
  f()
  const started = performance.now()
  for (let i = 0; i < repeats; i++) f()
  return (performance.now() - started) / 1000 / repeats
}

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const root = mkdtempSync(path.join(os.tmpdir(), "pleat-bench-checkpoint-"))
  try {
    const shards = Array.from({ length: count }, (_, i) => ({
      name: `p${i}`,
      shape: [rows, cols],
      slice: [
        [0, rows],
        [0, cols],
      ] as Array<[number, number]>,
      value: filled(rows * cols, i + 1),
      m: filled(rows * cols, 100 + i),
      v: filled(rows * cols, 200 + i).map(Math.abs),
    }))
    const fileBytes = count * rows * cols * 4 * 3
    const valueBytes = count * rows * cols * 4
    const size = `${count} x ${rows}x${cols} f32, ${(fileBytes / 2 ** 20).toFixed(0)} MiB`

    // The disk: the same bytes from one buffer, fsynced.
    const whole = new Uint8Array(fileBytes)
    let at = 0
    for (const s of shards)
      for (const a of [s.value, s.m, s.v]) {
        whole.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at)
        at += a.byteLength
      }
    const raw = path.join(root, "raw.bin")
    const writeLimit = gbPerSecond(
      fileBytes,
      seconds(() => Durable.writeFile(raw, whole)),
    )
    ctx.log(`checkpoint: write ceiling ${writeLimit.toFixed(2)} GB/s`)

    const stepDir = path.join(root, "ckpt", "step-00000001")
    let checksums: Record<string, string> = {}
    const save = gbPerSecond(
      fileBytes,
      seconds(() => {
        checksums = Checkpoint.writeShards(stepDir, 0, shards)
      }),
    )
    // Published as a save publishes it, so that it reads as a checkpoint.
    const manifest = {
      step: 1,
      seed: 1,
      dtype: "float32",
      world: 1,
      mapping: { tp: 1, cp: 1, dp: 1, pp: 1, etp: 1, ep: 1, edp: 1, vpp: null, order: "tp-cp-ep-dp-pp" },
      model: Checkpoint.modelRecord(ModelConfig.small, 0.01),
      batch: { microBatch: 1, globalBatch: 1 },
      ranks: 1,
      checksums,
    }
    CheckpointDirectory.publish(stepDir, JSON.stringify(manifest))
    const bin = path.join(stepDir, "rank-0.bin")

    const readLimit = gbPerSecond(
      fileBytes,
      seconds(() => readFileSync(bin)),
    )
    ctx.log(`checkpoint: read ceiling ${readLimit.toFixed(2)} GB/s`)
    const hashed = gbPerSecond(
      fileBytes,
      seconds(() => Checksum.ofFile(bin)),
    )
    const dir = path.join(root, "ckpt")
    const resumeWhole = gbPerSecond(
      valueBytes,
      seconds(() => {
        const stored = Checkpoint.stored(dir)
        for (const name of stored.shapes.keys()) stored.value(name)
      }),
    )
    const eighth = cols / 8
    const tpRank = gbPerSecond(
      valueBytes / 8,
      seconds(() => {
        for (let i = 0; i < count; i++)
          CheckpointRead.region(
            [
              {
                file: bin,
                slice: [
                  [0, rows],
                  [0, cols],
                ],
                at: i * rows * cols * 12,
              },
            ],
            [
              [0, rows],
              [3 * eighth, 4 * eighth],
            ],
            "float32",
          )
      }),
    )
    return [
      record(ctx, { case: `write + fsync from one buffer, ${size}`, metric: "bandwidth", value: writeLimit, unit: "GB/s" }),
      record(ctx, { case: `save (writeShards, SHA-256 as it writes), ${size}`, metric: "bandwidth", value: save, unit: "GB/s", limit: writeLimit }),
      record(ctx, { case: `read whole (readFileSync), ${size}`, metric: "bandwidth", value: readLimit, unit: "GB/s" }),
      record(ctx, { case: `checksum (SHA-256, 16 MiB pieces), ${size}`, metric: "bandwidth", value: hashed, unit: "GB/s", limit: readLimit }),
      record(ctx, { case: `resume: every parameter's values (Checkpoint.stored), ${size}`, metric: "bandwidth", value: resumeWhole, unit: "GB/s", limit: readLimit }),
      record(ctx, { case: `resume: a tp 8 rank's column eighth of each (CheckpointRead.region), ${size}`, metric: "bandwidth", value: tpRank, unit: "GB/s", limit: readLimit }),
    ]
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}
