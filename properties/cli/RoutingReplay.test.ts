// Routing replay (`--routing-record DIR`, `--routing-replay DIR`; Megatron-Core's router replay,
// semantics.md 2.1.10, keyed by the data): a recording made under one folded mapping replays
// under another. Replaying the same seed's recording trains exactly as the run routes by itself
// (any token given another token's experts would change the loss), and the replayed run's own
// recording is the file it replayed; replaying another seed's recording forces that routing and
// trains as one rank replaying it does. The files are NumPy .npy (Npy: an exact inverse, numpy's
// integer types read); bad directories and files are refused with one line, before any step.
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import path from "node:path"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Npy from "../../src/train/Npy.js"
import { fresh, mapping, run } from "./cliRun.js"
import { refused } from "./refused.js"
import { stepLosses } from "./tokenFiles.js"

/** Folded mappings (world 8, 4 or 1), with what does not change the math (recompute, the dispatcher, vpp). */
const mappings: ReadonlyArray<ReadonlyArray<string>> = [
  mapping(8, 2, 2, 1, 2, 2),
  [...mapping(8, 2, 1, 2, 4), "--recompute", "full"],
  [...mapping(8, 1, 2, 2, 2, 2), "--vpp", "2", "--dispatcher", "allgather"],
  [...mapping(4, 2, 1, 1, 4), "--recompute", "selective"],
  mapping(8, 1, 1, 2, 4),
  mapping(1, 1, 1, 1, 1),
]

/** Models both runs of a pair train (the routers of multi-token prediction layers included). */
const models: ReadonlyArray<ReadonlyArray<string>> = [
  [],
  ["--mtp-num-layers", "1", "--dense-first", "1"],
  ["--score-function", "sigmoid", "--expert-bias", "--aux-loss", "none"],
  ["--topk", "1", "--pre-softmax", "--aux-loss", "seq_aux:0.01"],
]

const model = ["--layers", "4", "--dtype", "float64", "--steps", "2", "--log", "json"]

/** The step files of a recording, by name, as bytes. */
const files = (dir: string): Map<string, Buffer> =>
  new Map(
    readdirSync(dir)
      .filter((f) => f.endsWith(".npy"))
      .sort()
      .map((f) => [f, readFileSync(path.join(dir, f))]),
  )

const train = async (flags: ReadonlyArray<string>) => {
  const r = await run(["train", ...model, ...flags])
  expect(r.status, `${flags.join(" ")}: ${r.err}`).toBe(0)
  return stepLosses(r.out)
}

const close = (a: ReadonlyArray<number>, b: ReadonlyArray<number>, tolerance: number, what: string) => {
  expect(a.length, what).toBe(b.length)
  a.forEach((x, i) => expect(Math.abs(x - (b[i] as number)) / Math.abs(b[i] as number), `${what}: step ${i + 1} ${x} against ${b[i]}`).toBeLessThan(tolerance))
}

/** Every MoE layer's experts of every token in a step file, as an int32 array. */
const experts = (bytes: Uint8Array) => Npy.decodeIntegers(bytes, "test")

describe("routing replay", () => {
  test("a recording replays under any folded mapping: the same routing, the same training", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...mappings),
        fc.constantFrom(...mappings),
        fc.constantFrom(...models),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1001, max: 2000 }),
        async (fromMapping, toMapping, options, seed, other) => {
          const from = [...fromMapping, ...options]
          const to = [...toMapping, ...options]
          const recorded = fresh("routing-record")
          await train([...from, "--seed", String(seed), "--routing-record", recorded])
          // The same seed: replaying trains exactly as routing by itself.
          const again = fresh("routing-again")
          const own = await train([...to, "--seed", String(seed)])
          const replayed = await train([...to, "--seed", String(seed), "--routing-replay", recorded, "--routing-record", again])
          close(replayed, own, 1e-10, `${from.join(" ")} -> ${to.join(" ")}, seed ${seed}`)
          expect(files(again)).toEqual(files(recorded))
          // Another seed's weights: the recording's routing is forced, as on one rank.
          const forced = fresh("routing-forced")
          const theirs = await train([...to, "--seed", String(other), "--routing-replay", recorded, "--routing-record", forced])
          expect(files(forced)).toEqual(files(recorded))
          const single = await train([...mapping(1, 1, 1, 1, 1), ...options, "--seed", String(other), "--routing-replay", recorded])
          close(theirs, single, 1e-9, `${to.join(" ")} against one rank, seed ${other}`)
          // Not vacuous: that seed routes otherwise by itself.
          const free = fresh("routing-free")
          await train([...to, "--seed", String(other), "--routing-record", free])
          expect(files(free)).not.toEqual(files(recorded))
        },
      ),
      { numRuns: 6 },
    )
  }, 600_000)

  test("float32 on the native kernels and the threads backend record the same routing as local", async () => {
    const flags = ["--layers", "2", "--steps", "2", "--log", "json", ...mapping(4, 2, 1, 1, 2, 2)]
    const local = fresh("routing-local")
    const threads = fresh("routing-threads")
    const a = await run(["train", ...flags, "--routing-record", local])
    const b = await run(["train", ...flags, "--backend", "threads", "--routing-record", threads])
    expect(a.status, a.err).toBe(0)
    expect(b.status, b.err).toBe(0)
    expect(files(threads)).toEqual(files(local))
    // The file is [MoE layers, global batch x seq, topk] of experts, each token's distinct.
    const step = experts(files(local).get("step-00000001.npy") as Buffer)
    expect(step.shape).toEqual([2, 8 * 16, 2])
    for (let t = 0; t < step.data.length; t += 2) {
      expect(step.data[t]).not.toBe(step.data[t + 1])
      for (const e of [step.data[t], step.data[t + 1]]) expect(e === undefined || e < 0 || e >= 8).toBe(false)
    }
    const manifest = JSON.parse(readFileSync(path.join(local, "routing.json"), "utf8"))
    expect(manifest).toEqual({ format: "pleat-routing", version: 1, numExperts: 8, topk: 2, seq: 16, globalBatch: 8, layers: [0, 1] })
  }, 120_000)

  test(".npy: an exact inverse for int32; numpy's integer types read; other files refused", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 }), fc.integer(), (shape, seed) => {
        const count = shape.reduce((a, b) => a * b, 1)
        const data = Int32Array.from({ length: count }, (_, i) => (Math.imul(seed, i + 1) ^ (i << 7)) | 0)
        const bytes = Npy.encodeInt32(data, shape)
        // The header is a 1.0 header whose data starts at a multiple of 64 bytes, ended by a newline.
        const headerLength = new DataView(bytes.buffer).getUint16(8, true)
        expect((10 + headerLength) % 64).toBe(0)
        expect(bytes[10 + headerLength - 1]).toBe(0x0a)
        const back = Npy.decodeIntegers(bytes, "x")
        expect(back.shape).toEqual(shape)
        expect(Array.from(back.data)).toEqual(Array.from(data))
      }),
    )
    // numpy's int64 (np.save of Python ints) and uint8, written as numpy writes them.
    const saved = (descr: string, values: ReadonlyArray<number>, bytesEach: number, major = 1) => {
      const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${values.length},), }`
      const lengthBytes = major === 1 ? 2 : 4
      const pad = (64 - ((8 + lengthBytes + dict.length + 1) % 64)) % 64
      const header = `${dict}${" ".repeat(pad)}\n`
      const out = new Uint8Array(8 + lengthBytes + header.length + values.length * bytesEach)
      out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0])
      const view = new DataView(out.buffer)
      if (major === 1) view.setUint16(8, header.length, true)
      else view.setUint32(8, header.length, true)
      for (let i = 0; i < header.length; i++) out[8 + lengthBytes + i] = header.charCodeAt(i)
      const at = 8 + lengthBytes + header.length
      values.forEach((v, i) => {
        if (bytesEach === 8) view.setBigInt64(at + i * 8, BigInt(v), true)
        else if (bytesEach === 1) view.setUint8(at + i, v)
        else view.setFloat32(at + i * 4, v, true)
      })
      return out
    }
    expect(Array.from(Npy.decodeIntegers(saved("<i8", [3, -1, 7], 8), "x").data)).toEqual([3, -1, 7])
    expect(Array.from(Npy.decodeIntegers(saved("<i8", [5], 8, 2), "x").data)).toEqual([5])
    expect(Array.from(Npy.decodeIntegers(saved("|u1", [0, 255], 1), "x").data)).toEqual([0, 255])
    expect(() => Npy.decodeIntegers(saved("<f4", [1.5], 4), "x")).toThrow(/<f4, not little-endian integers/)
    expect(() => Npy.decodeIntegers(saved("<i8", [2 ** 60], 8), "x")).toThrow(/beyond 2\^53/)
    const fortran = new TextDecoder("latin1").decode(saved("<i8", [1], 8)).replace("False", "True ")
    expect(() =>
      Npy.decodeIntegers(
        Uint8Array.from(fortran, (c) => c.charCodeAt(0)),
        "x",
      ),
    ).toThrow(/Fortran order/)
    const whole = Npy.encodeInt32(Int32Array.of(1, 2, 3), [3])
    expect(() => Npy.decodeIntegers(whole.subarray(0, whole.length - 1), "x")).toThrow(/is cut or padded/)
    expect(() => Npy.decodeIntegers(new TextEncoder().encode("not numpy at all"), "x")).toThrow(/not a .npy file/)
  })

  test("bad directories and files are refused with one line, before any step", async () => {
    const base = ["train", "--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--layers", "2"]
    const recorded = fresh("routing-bad")
    expect((await run([...base, "--steps", "2", "--log", "json", "--routing-record", recorded])).status).toBe(0)
    const oneLine = async (flags: ReadonlyArray<string>, pattern: RegExp) => {
      const r = await run([...base, ...flags])
      expect(r.status, r.err).toBe(2)
      expect(r.out).toBe("")
      expect(r.err.trimEnd().split("\n"), r.err).toHaveLength(1)
      expect(r.err).toMatch(pattern)
      expect(r.err).not.toMatch(/\bat .*\.(ts|js):\d+/)
    }
    await oneLine(["--routing-replay", recorded, "--steps", "3"], /--routing-replay: .*step-00000003\.npy" cannot be read for step 3.*fix: record step 3 too/)
    await oneLine(["--routing-replay", recorded, "--experts", "16", "--steps", "2"], /holds the routing of another model or batch \(numExperts 8, this run 16\)/)
    await oneLine(["--routing-replay", recorded, "--quantile-balancing", "--steps", "2"], /--routing-replay: .* and --quantile-balancing both choose the experts/)
    await oneLine(["--routing-replay", path.join(recorded, "missing"), "--steps", "2"], /is not a directory/)
    await oneLine(["--routing-record", recorded, "--global-batch", "4", "--steps", "2"], /--routing-record: .* holds the routing of another run \(globalBatch 8, this run 4\)/)
    // Files of the right shape with an expert out of range, or one expert twice for a token.
    const edited = fresh("routing-edited")
    const step = experts(readFileSync(path.join(recorded, "step-00000001.npy")))
    const write = (values: Int32Array) => writeFileSync(path.join(edited, "step-00000001.npy"), Npy.encodeInt32(values, step.shape))
    const outOfRange = Int32Array.from(step.data)
    outOfRange[5] = 8
    write(outOfRange)
    await oneLine(["--routing-replay", edited, "--steps", "1"], /step-00000001\.npy\[0, 2, 1\]: 8 is not an expert of \[0, 8\)/)
    const twice = Int32Array.from(step.data)
    twice[7] = twice[6] as number
    write(twice)
    await oneLine(["--routing-replay", edited, "--steps", "1"], /step-00000001\.npy\[0, 3, 1\]: \d routes the token to this expert twice/)
    writeFileSync(path.join(edited, "step-00000001.npy"), Npy.encodeInt32(Int32Array.from(step.data.subarray(0, 8)), [1, 4, 2]))
    await oneLine(["--routing-replay", edited, "--steps", "1"], /shape \(1, 4, 2\)" is not \[MoE layers 2, global batch x seq 128, topk 2\]/)
    // A recording directory shared with --save or --routing-replay.
    const save = fresh("routing-save")
    expect(refused([...base, "--steps", "2", "--save", save, "--routing-record", path.join(save, "routing")])).toMatch(/--routing-record: .* shares its folder with --save/)
    expect(refused([...base, "--steps", "2", "--routing-replay", recorded, "--routing-record", recorded])).toMatch(/shares its folder with --routing-replay/)
    // pleat verify replays on both runs, checked before either starts; it records nothing.
    const verified = await run(["verify", "--layers", "2", "--steps", "2", "--routing-replay", recorded, ...mapping(4, 2, 1, 1, 2, 2)])
    expect(verified.status, verified.err).toBe(0)
    expect(verified.out).toMatch(/: OK\n/)
    const verifyMissing = await run(["verify", "--layers", "2", "--steps", "3", "--routing-replay", recorded, ...mapping(4, 2, 1, 1, 2, 2)])
    expect(verifyMissing.status).toBe(2)
    expect(verifyMissing.out).toBe("")
    expect(verifyMissing.err).toMatch(/^pleat verify: --routing-replay: .*step-00000003\.npy" cannot be read for step 3.*\n$/)
    expect(refused(["verify", "--layers", "2", "--steps", "2", "--routing-record", fresh("routing-verify"), ...mapping(4, 2, 1, 1, 2, 2)])).toMatch(
      /--routing-record: .* is not used by pleat verify/,
    )
    // Hand-written files replay without routing.json (Python may write only the step files).
    const handWritten = fresh("routing-hand")
    writeFileSync(path.join(handWritten, "step-00000001.npy"), readFileSync(path.join(recorded, "step-00000001.npy")))
    const replayed = await run([...base, "--steps", "1", "--log", "json", "--routing-replay", handWritten])
    expect(replayed.status, replayed.err).toBe(0)
  }, 120_000)
})
