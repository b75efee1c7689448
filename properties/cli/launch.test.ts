// pleat launch: the mpirun command line it builds (--oversubscribe only past the cores,
// --allow-run-as-root only as root, --bind-to none, the pleat command after node and pleat's
// entry, a leading `pleat` / `npx pleat` dropped); input that cannot work refused with status 2
// and one line naming the fix; and, where mpirun and the MPI addon are here, real jobs: the
// job's status is the launch's, and SIGINT stops the job with nothing left behind.
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterEach, describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import * as Mpirun from "../../src/cli/doctor/Mpirun.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as LaunchCommand from "../../src/cli/LaunchCommand.js"
import * as LaunchStatus from "../../src/runtime/LaunchStatus.js"
import * as MpiAddon from "../../src/native/MpiAddon.js"
import { refused } from "./refused.js"
import { pleatMain } from "../support/pleatProcess.js"

const root = path.resolve(import.meta.dirname, "../..")
const program = ["/usr/bin/node", "/pleat/dist/cli/main.js"]
const plan = (processes: number, cores: number, isRoot: boolean, command: ReadonlyArray<string> = ["verify", "--world", "8"]) =>
  LaunchCommand.mpirunArguments({ processes, cores, root: isRoot, program, command })

const started = Date.now()
const mpirunHere = Mpirun.findOnPath("mpirun", process.env.PATH) !== undefined
const mpiHere = MpiAddon.status().available

const saved = process.env.PATH
afterEach(() => {
  process.env.PATH = saved
})

describe("the mpirun command line", () => {
  test("-np N, then --bind-to none, then node and pleat's entry, then the command", () => {
    expect(plan(2, 2, false)).toEqual(["-np", "2", "--bind-to", "none", ...program, "verify", "--world", "8"])
  })

  test("--oversubscribe exactly when N exceeds the cores", () => {
    for (const [n, cores] of [
      [1, 1],
      [2, 2],
      [4, 8],
      [3, 2],
      [8, 2],
      [16, 15],
    ] as const) {
      expect(plan(n, cores, false).includes("--oversubscribe"), `${n} on ${cores}`).toBe(n > cores)
    }
  })

  test("--allow-run-as-root exactly when running as root", () => {
    expect(plan(2, 2, true)).toContain("--allow-run-as-root")
    expect(plan(2, 2, false)).not.toContain("--allow-run-as-root")
  })

  test("mpirun's own flags come before the program, the command's flags after it", () => {
    const args = plan(8, 2, true, ["train", "--steps", "5", "--oversubscribe-is-not-ours"])
    const at = args.indexOf(program[0] as string)
    expect(args.slice(0, at)).toEqual(["-np", "8", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none"])
    expect(args.slice(at + program.length)).toEqual(["train", "--steps", "5", "--oversubscribe-is-not-ours"])
  })

  test("a leading `pleat` or `npx pleat` is dropped, nothing else", () => {
    expect(LaunchCommand.pleatCommand(["pleat", "verify", "--world", "8"])).toEqual(["verify", "--world", "8"])
    expect(LaunchCommand.pleatCommand(["npx", "pleat", "train"])).toEqual(["train"])
    expect(LaunchCommand.pleatCommand(["train", "--name", "pleat"])).toEqual(["train", "--name", "pleat"])
    expect(LaunchCommand.pleatCommand(["npx", "train"])).toEqual(["npx", "train"])
    expect(LaunchCommand.pleatCommand([])).toEqual([])
    // A checkout's way to run pleat: node and this pleat's entry point (relative or absolute).
    const entry = path.join(root, "dist", "cli", "main.js")
    expect(LaunchCommand.pleatCommand(["node", path.relative(process.cwd(), entry), "train", "--steps", "2"])).toEqual(["train", "--steps", "2"])
    expect(LaunchCommand.pleatCommand([process.execPath, entry, "verify"])).toEqual(["verify"])
    // Another program's main.js is not this pleat: left for the command check to refuse.
    expect(LaunchCommand.pleatCommand(["node", path.join(root, "scripts", "main.js"), "train"])).toEqual(["node", path.join(root, "scripts", "main.js"), "train"])
  })
})

describe("the job's status through the status file (LaunchStatus)", () => {
  const file = () => path.join(mkdtempSync(path.join(tmpdir(), "pleat-status-")), "status")
  test("without the variable a process exits with its status; with it rank 0 writes the status and every process exits 0", () => {
    for (const code of [0, 1, 2, 3, 130]) {
      expect(LaunchStatus.exitWith(code, { OMPI_COMM_WORLD_RANK: "0", OMPI_COMM_WORLD_SIZE: "2" })).toBe(code)
      const f = file()
      expect(LaunchStatus.exitWith(code, { OMPI_COMM_WORLD_RANK: "1", OMPI_COMM_WORLD_SIZE: "2", [LaunchStatus.variable]: f })).toBe(0)
      expect(LaunchStatus.read(0, f)).toBe(0)
      expect(LaunchStatus.exitWith(code, { OMPI_COMM_WORLD_RANK: "0", OMPI_COMM_WORLD_SIZE: "2", [LaunchStatus.variable]: f })).toBe(0)
      expect(LaunchStatus.read(0, f)).toBe(code)
    }
  })

  test("mpirun's status wins when it is not 0 or when nothing usable was written; a failed write keeps the status", () => {
    const f = file()
    writeFileSync(f, "2\n")
    expect(LaunchStatus.read(139, f)).toBe(139)
    expect(LaunchStatus.read(0, `${f}.missing`)).toBe(0)
    writeFileSync(f, "garbage")
    expect(LaunchStatus.read(0, f)).toBe(0)
    expect(LaunchStatus.exitWith(2, { OMPI_COMM_WORLD_RANK: "0", OMPI_COMM_WORLD_SIZE: "2", [LaunchStatus.variable]: "/no/such/dir/status" })).toBe(2)
  })
})

describe("refused before anything starts", () => {
  test("no -- or no command after it", () => {
    expect(refused(["launch", "-n", "2"])).toContain("--: (not given) is missing before the pleat command")
    expect(refused(["launch", "-n", "2", "--"])).toContain("command: (not given) is missing after --")
    expect(refused(["launch", "-n", "2", "--", "pleat"])).toContain("is missing after --")
    expect(refused(["launch", "-n", "2", "--", "npx", "pleat"])).toContain("is missing after --")
    expect(refused(["launch", "-n", "2", "--", "pleat", "launch", "-n", "2", "--", "pleat", "train"])).toContain('command: "launch"')
  })

  test("N missing or not a positive integer", () => {
    expect(refused(["launch", "--", "pleat", "train"])).toContain("-n: (not given) is required")
    expect(refused(["launch", "-n", "0", "--", "pleat", "train"])).toContain("is not a positive integer")
    expect(refused(["launch", "-np", "two", "--", "pleat", "train"])).toContain("is not a positive integer")
    expect(refused(["launch", "--np=-3", "--", "pleat", "train"])).toContain("is not a positive integer")
    expect(refused(["launch", "-n", "2", "-x", "--", "pleat", "train"])).toContain("is not a flag")
  })

  test("more processes than the machine's memory can hold: refused before mpirun forks them", () => {
    const gib = 2 ** 30
    // A machine of 24 GiB holds 384 processes of 64 MiB; one more is refused, naming the bound.
    expect(LaunchCommand.mostProcesses(24 * gib)).toBe(384)
    expect(LaunchCommand.processesProblem(384, 24 * gib)).toBeUndefined()
    const problem = LaunchCommand.processesProblem(385, 24 * gib)
    expect(problem?.field).toBe("--np")
    expect(problem?.value).toBe("385")
    expect(problem?.fix).toContain("at most 384")
    // Every N up to the bound passes and every N past it is refused, for any memory.
    for (const memory of [100 * 2 ** 20, 3 * gib + 12345, 512 * gib]) {
      const most = LaunchCommand.mostProcesses(memory)
      expect(most * LaunchCommand.processFloorBytes).toBeLessThanOrEqual(Math.max(memory, LaunchCommand.processFloorBytes))
      expect((most + 1) * LaunchCommand.processFloorBytes).toBeGreaterThan(memory)
      expect(LaunchCommand.processesProblem(most, memory)).toBeUndefined()
      expect(LaunchCommand.processesProblem(most + 1, memory)).toBeDefined()
    }
    expect(refused(["launch", "-n", "100000000", "--", "pleat", "doctor"])).toContain('--np: "100000000" is more processes than this machine')
  })

  test("every problem in one line", () => {
    const line = refused(["launch", "-n", "0"])
    expect(line).toContain("positive integer")
    expect(line).toContain("is missing before the pleat command")
  })

  test("mpirun not found: the line names the packages to install", () => {
    expect(refused(["launch", "-n", "2", "--mpirun", "/no/such/mpirun", "--", "pleat", "train"])).toContain("apt-get install openmpi-bin libopenmpi-dev, then npm run build:native")
    process.env.PATH = mkdtempSync(path.join(tmpdir(), "pleat-empty-path-"))
    const line = refused(["launch", "-n", "2", "--", "pleat", "train"])
    expect(line).toContain("mpirun: (not given) is not on PATH")
    expect(line).toContain("apt-get install openmpi-bin libopenmpi-dev, then npm run build:native")
  })

  test.runIf(!mpiHere)("without the MPI addon: refused naming it", () => {
    expect(refused(["launch", "-n", "2", "--", "pleat", "train"])).toContain("pleat_mpi.node")
  })

  test("--help shows the usage with status 0", async () => {
    const io = memoryIo()
    expect(await Cli.run(["launch", "--help"], io)).toBe(0)
    expect(io.out).toContain("usage: pleat launch -n N")
  })
})

// Containers may forbid one process reading another's memory (Open MPI's vader single-copy via
// CMA): the jobs below copy through shared memory, which works everywhere.
process.env.OMPI_MCA_btl_vader_single_copy_mechanism = "none"

const version = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version
const pleat = (args: ReadonlyArray<string>) => spawnSync(process.execPath, [pleatMain, ...args], { cwd: root, encoding: "utf8", timeout: 120_000 })

/** The pids of processes whose command line holds `marker`. */
const processesWith = (marker: string): Array<number> =>
  readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker)
      } catch {
        return false
      }
    })
    .map(Number)

describe.runIf(mpirunHere && mpiHere)("real jobs under mpirun", () => {
  test("pleat launch -n 2 -- pleat --version exits 0 and prints the version", () => {
    const run = pleat(["launch", "-n", "2", "--", "pleat", "--version"])
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toContain(`pleat ${version}\n`)
    expect(run.stderr).toMatch(/^pleat launch: \S*mpirun -np 2 .*--bind-to none .*main\.(js|ts) --version\n/)
  })

  test("the job's status is the launch's: a command refused on the ranks exits 2, its one line without mpirun's banner", () => {
    const run = pleat(["launch", "-n", "2", "--", "npx", "pleat", "groups", "--world", "0"])
    expect(run.status, run.stderr).toBe(2)
    const lines = run.stderr.trimEnd().split("\n")
    expect(lines, run.stderr).toHaveLength(2)
    expect(lines[0]).toMatch(/^pleat launch: \S*mpirun -np 2 /)
    expect(lines[1]).toBe('pleat groups: --world: "0" is not a positive integer; fix: write --world 1, 2, 3, ...')
    // Nothing of the status file is left behind.
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith("pleat-launch-") && statSync(path.join(tmpdir(), f)).mtimeMs > started)).toEqual([])
  })

  test("routing recorded under MPI is local's, byte for byte, and replays there", () => {
    const flags = ["--world", "4", "--tp", "2", "--cp", "1", "--pp", "1", "--ep", "2", "--layers", "2", "--dtype", "float64", "--steps", "2", "--log", "json"]
    const [mpi, local, replayed] = ["mpi", "local", "replayed"].map((label) => mkdtempSync(path.join(tmpdir(), `pleat-routing-${label}-`)))
    const recorded = pleat(["launch", "-n", "4", "--", "pleat", "train", "--backend", "mpi", ...flags, "--routing-record", mpi as string])
    expect(recorded.status, recorded.stderr).toBe(0)
    const same = pleat(["train", ...flags, "--routing-record", local as string])
    expect(same.status, same.stderr).toBe(0)
    const again = pleat([
      "launch",
      "-n",
      "4",
      "--",
      "pleat",
      "train",
      "--backend",
      "mpi",
      ...flags,
      "--seed",
      "5",
      "--routing-replay",
      mpi as string,
      "--routing-record",
      replayed as string,
    ])
    expect(again.status, again.stderr).toBe(0)
    for (const file of ["step-00000001.npy", "step-00000002.npy"]) {
      const bytes = readFileSync(path.join(mpi as string, file))
      expect(readFileSync(path.join(local as string, file)).equals(bytes), file).toBe(true)
      expect(readFileSync(path.join(replayed as string, file)).equals(bytes), file).toBe(true)
    }
  }, 240_000)

  test("SIGINT stops the job: mpirun and every rank end, nothing is left", async () => {
    const marker = `${9_000_000 + (process.pid % 1_000_000)}`
    const args = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]
    const child: ChildProcess = spawn(process.execPath, [pleatMain, "launch", "-n", "2", "--", "pleat", "train", ...args, "--steps", "100000", "--seed", marker, "--log", "json"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    })
    let out = ""
    let err = ""
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()))
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    const deadline = performance.now() + 90_000
    while (!out.includes('"msg":"step"')) {
      if (performance.now() > deadline) throw new Error(`no step within 90 s: ${err}`)
      await new Promise((r) => setTimeout(r, 100))
    }
    // The launcher and mpirun's two ranks, all with the marker in their command lines.
    expect(processesWith(marker).length).toBeGreaterThanOrEqual(3)
    const sent = performance.now()
    child.kill("SIGINT")
    expect(await exited, err).toBe(130)
    expect(performance.now() - sent).toBeLessThan(15_000)
    expect(err).toContain("pleat launch: interrupted by SIGINT")
    // mpirun ends its ranks before it exits; give the kernel a moment to reap them.
    const settle = performance.now() + 5000
    while (processesWith(marker).length > 0 && performance.now() < settle) await new Promise((r) => setTimeout(r, 100))
    expect(processesWith(marker)).toEqual([])
  })
})
