// pleat doctor: one JSON object with --json, keyed cpu, cuda, cublas, nccl, mpi, each with a
// boolean `available`; what it says agrees with the addons' own answers (MpiAddon.status,
// cudaStatus, the CPU addon, the launcher of this process); the library search finds files
// planted where the documented list says it looks; text mode and a missing engine exit 0; a bad
// flag is refused with one line and status 2.
import { spawnSync } from "node:child_process"
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import path from "node:path"
import { afterEach, describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import * as CpuInfo from "../../src/cli/doctor/CpuInfo.js"
import * as Mpirun from "../../src/cli/doctor/Mpirun.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as Addon from "../../src/native/Addon.js"
import * as Cpu from "../../src/native/Cpu.js"
import * as Cuda from "../../src/native/Cuda.js"
import * as MpiAddon from "../../src/native/MpiAddon.js"
import * as Launcher from "../../src/runtime/Launcher.js"
import { refused } from "./refused.js"

import * as NcclApi from "../../src/comm/nccl/NcclApi.js"
import * as GpuLibraryProbe from "../../src/native/GpuLibraryProbe.js"
import { pleatMain } from "../support/pleatProcess.js"

const root = path.resolve(import.meta.dirname, "../..")

type Json = Record<string, unknown>

const doctor = (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = Cli.run(["doctor", ...argv], io)
  return { status, out: io.out, err: io.err }
}

type Report = Record<"cpu" | "cuda" | "cublas" | "nccl" | "mpi", Json>

const report = (): Report => {
  const r = doctor(["--json"])
  expect(r.status, r.err).toBe(0)
  expect(r.err).toBe("")
  expect(r.out.trimEnd().split("\n")).toHaveLength(1)
  return JSON.parse(r.out) as Report
}

const saved = { ...process.env }
afterEach(() => {
  for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key]
  Object.assign(process.env, saved)
})

describe("pleat doctor --json", () => {
  test("one object with the five keys, each with a boolean available", () => {
    const r = report()
    expect(Object.keys(r).sort()).toEqual(["cpu", "cublas", "cuda", "mpi", "nccl"])
    for (const [key, entry] of Object.entries(r)) expect(typeof entry.available, key).toBe("boolean")
  })

  test("cpu: always available; threads, model and the kernels' ISA as the CPU addon reports them", () => {
    const cpu = report().cpu as Json
    expect(cpu.available).toBe(true)
    expect(cpu.threads).toBe(availableParallelism())
    expect(cpu.model).toBe(CpuInfo.read().model ?? null)
    const kernels = cpu.kernels as Json
    expect(kernels.built).toBe(true)
    expect(kernels.activeIsa).toBe(Cpu.activeIsa())
    expect(kernels.features).toEqual(Cpu.cpuFeatures())
  })

  test("mpi: what MpiAddon.status says, mpirun as PATH finds it, the launcher of this process", () => {
    const mpi = report().mpi as Json
    const status = MpiAddon.status()
    expect(mpi.available).toBe(status.available)
    if (status.available) expect(mpi.library).toBe(status.library)
    else expect(mpi.reason).toBe(status.reason)
    const onPath = Mpirun.findOnPath("mpirun", process.env.PATH)
    const mpirun = mpi.mpirun as Json
    expect(mpirun.found).toBe(onPath !== undefined)
    if (onPath !== undefined) {
      expect(mpirun.path).toBe(onPath)
      expect(String(mpirun.version)).toMatch(/mpirun|Open MPI|MPICH/i)
    }
    const launch = Launcher.fromEnvironment()
    expect(mpi.launch).toEqual({ launcher: launch.launcher, rank: launch.rank, size: launch.size, localRank: launch.localRank })
  })

  test("mpi: the launcher variables of an mpirun rank are read (and never start MPI)", () => {
    Object.assign(process.env, { OMPI_COMM_WORLD_RANK: "3", OMPI_COMM_WORLD_SIZE: "8", OMPI_COMM_WORLD_LOCAL_RANK: "1" })
    expect((report().mpi as Json).launch).toEqual({ launcher: "mpirun (Open MPI)", rank: 3, size: 8, localRank: 1 })
    process.env.OMPI_COMM_WORLD_RANK = "nine"
    expect(((report().mpi as Json).launch as Json).launcher).toBe("unreadable")
  })

  test("cuda: available exactly when the CUDA addon sees a device; cublas and nccl available when they load whole and there is a GPU", () => {
    const r = report()
    const status = Cuda.cudaStatus()
    expect(r.cuda.available).toBe(status.available)
    if (!status.available) expect(String(r.cuda.reason)).not.toBe("")
    // built: the addon file exists (npm ci builds it wherever nvcc was found), device or not.
    expect(r.cuda.built).toBe(Addon.isBuilt("pleat_cuda"))
    if (r.cuda.available === true) expect(r.cuda.built).toBe(true)
    // One entry per device, each with its memory; none without a device.
    expect((r.cuda.gpus as Array<{ memoryBytes: number }>).length).toBe(r.cuda.devices)
    for (const g of r.cuda.gpus as Array<{ memoryBytes: number; name: string }>) expect(g.memoryBytes > 0 && g.name !== "").toBe(true)
    const cublas = r.cublas as Json & { missing: Array<string> }
    expect(cublas.available).toBe(cublas.path !== null && cublas.loadError === null && cublas.missing.length === 0 && status.available)
    if (cublas.path === null) expect(String(cublas.reason)).toContain("no libcublas.so found")
    const nccl = r.nccl as Json & { missing: Array<string> }
    expect(nccl.available).toBe(nccl.path !== null && nccl.loadError === null && nccl.missing.length === 0 && status.available)
    if (nccl.path === null) expect(String(nccl.reason)).toContain("no libnccl.so.2 found")
    for (const key of ["cublas", "nccl"] as const) expect(Array.isArray(r[key].found)).toBe(true)
  })

  test("the library search looks where it says: LD_LIBRARY_PATH, Python environments on PATH, PLEAT_NCCL_LIB", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-doctor-"))
    const driverDir = path.join(dir, "driver")
    const env = path.join(dir, "venv")
    const cublasDir = path.join(env, "lib", "python3.12", "site-packages", "nvidia", "cu13", "lib")
    const ncclDir = path.join(dir, "nccl")
    for (const d of [driverDir, path.join(env, "bin"), cublasDir, ncclDir]) mkdirSync(d, { recursive: true })
    const plant = (file: string) => writeFileSync(file, "")
    plant(path.join(driverDir, "libcuda.so.1"))
    plant(path.join(env, "bin", "python3"))
    chmodSync(path.join(env, "bin", "python3"), 0o755)
    plant(path.join(cublasDir, "libcublas.so.13"))
    plant(path.join(cublasDir, "libcublasLt.so.13"))
    plant(path.join(cublasDir, "libcublas.so.13.not-a-library.txt"))
    plant(path.join(ncclDir, "libnccl.so.2"))
    Object.assign(process.env, { LD_LIBRARY_PATH: driverDir, PATH: `${path.join(env, "bin")}${path.delimiter}${process.env.PATH}`, PLEAT_NCCL_LIB: ncclDir })
    const r = report()
    expect(r.cuda.driver).toContain(path.join(driverDir, "libcuda.so.1"))
    expect(r.cublas.found).toEqual(expect.arrayContaining([path.join(cublasDir, "libcublas.so.13"), path.join(cublasDir, "libcublasLt.so.13")]))
    expect(r.cublas.found).not.toContain(path.join(cublasDir, "libcublas.so.13.not-a-library.txt"))
    expect(r.cublas.searched).toContain(cublasDir)
    expect(r.nccl.found).toContain(path.join(ncclDir, "libnccl.so.2"))
    expect((r.nccl.searched as Array<string>)[0]).toBe(ncclDir)
    // The first found file is loaded: an empty file does not, and the report says why.
    expect(r.nccl.path).toBe(path.join(ncclDir, "libnccl.so.2"))
    expect([r.nccl.version, typeof r.nccl.loadError]).toEqual([null, "string"])
    // PLEAT_NCCL_LIB may name the file itself.
    process.env.PLEAT_NCCL_LIB = path.join(ncclDir, "libnccl.so.2")
    expect(report().nccl.found).toContain(path.join(ncclDir, "libnccl.so.2"))
  })

  // Stand-ins for NCCL and cuBLAS, compiled here: only their version queries and a few entry
  // points, so the loader's dlopen, dlsym and version decoding are checked without the real ones.
  const cc = spawnSync("cc", ["--version"]).status === 0
  test.skipIf(!cc)("the first library found is loaded: its version and the entry points it lacks", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pleat-doctor-libs-"))
    const build = (name: string, source: string) => {
      writeFileSync(path.join(dir, `${name}.c`), source)
      const made = spawnSync("cc", ["-shared", "-fPIC", "-o", path.join(dir, name), path.join(dir, `${name}.c`)], { encoding: "utf8" })
      expect(made.status, made.stderr).toBe(0)
    }
    build("libnccl.so.2", "int ncclGetVersion(int* v) { *v = 22304; return 0; }\nint ncclSend(void) { return 0; }\nint ncclRecv(void) { return 0; }\n")
    build("libcublas.so.13", "int cublasGetProperty(int t, int* v) { *v = t == 0 ? 13 : t == 1 ? 1 : 2; return 0; }\n")
    Object.assign(process.env, { PLEAT_NCCL_LIB: path.join(dir, "libnccl.so.2"), LD_LIBRARY_PATH: dir })
    const r = report()
    expect([r.nccl.path, r.nccl.version, r.nccl.loadError]).toEqual([path.join(dir, "libnccl.so.2"), "2.23.4", null])
    expect(r.nccl.missing).toEqual(NcclApi.ENTRY_POINTS.filter((e) => !["ncclGetVersion", "ncclSend", "ncclRecv"].includes(e)))
    expect([r.cublas.path, r.cublas.version, r.cublas.loadError]).toEqual([path.join(dir, "libcublas.so.13"), "13.1.2", null])
    expect(r.cublas.missing).not.toContain("cublasGetProperty")
    expect((r.cublas.missing as Array<string>).length).toBeGreaterThan(0)
    expect(GpuLibraryProbe.versionText(2708)).toBe("2.7.8") // NCCL before 2.9: major * 1000 + minor * 100 + patch
  })

  test("as a program, stdout is exactly the JSON object", () => {
    const run = spawnSync(process.execPath, [pleatMain, "doctor", "--json"], { cwd: root, encoding: "utf8" })
    expect(run.status, run.stderr).toBe(0)
    expect(Object.keys(JSON.parse(run.stdout) as Json).sort()).toEqual(["cpu", "cublas", "cuda", "mpi", "nccl"])
  })
})

describe("pleat doctor (text)", () => {
  test("one block per engine, each yes or no; status 0 even where engines are missing", () => {
    const r = doctor([])
    expect(r.status, r.err).toBe(0)
    expect(r.err).toBe("")
    for (const name of ["cpu", "mpi", "cuda", "cublas", "nccl"]) expect(r.out).toMatch(new RegExp(`^${name} +(yes|no) `, "m"))
    expect(r.out).toMatch(/^cpu +yes /m)
    expect(r.out).toMatch(/^cublas +no /m)
  })

  test("--help shows the usage", () => {
    const r = doctor(["--help"])
    expect(r.status).toBe(0)
    expect(r.out).toContain("usage: pleat doctor [--json]")
  })

  test("a bad flag or a stray word is refused with one line", () => {
    expect(refused(["doctor", "--jsn"])).toContain("did you mean --json?")
    expect(refused(["doctor", "cpu"])).toContain("is not a flag")
    expect(refused(["doctor", "--json=yes"])).toContain("takes no value")
  })
})

describe("CpuInfo", () => {
  test("counts physical cores over sockets, not hardware threads, and keeps the first model name", () => {
    const block = (socket: number, core: number) => `processor\t: x\nmodel name\t: Chip ${socket}\nphysical id\t: ${socket}\ncore id\t\t: ${core}\n`
    // Two sockets of two cores, two hardware threads each: 8 processors, 4 cores.
    const text = [0, 1].flatMap((s) => [0, 1].flatMap((c) => [block(s, c), block(s, c)])).join("\n")
    expect(CpuInfo.parse(text)).toEqual({ model: "Chip 0", physicalCores: 4 })
    expect(CpuInfo.parse("processor\t: 0\n")).toEqual({ model: undefined, physicalCores: undefined })
  })
})
