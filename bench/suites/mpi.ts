/**
 * mpi: the MPI backend's collectives against the engine's own, measured in the same run.
 *
 * Two programs make the same measurements on the same buffers, one rank per process under
 * mpirun: the engine's (build/Release/pleat_mpi_engine_bench, plain MPI C calls:
 * MPI_Ialltoallv / Iallgather / Iallreduce / Ibarrier + MPI_Wait on a communicator of all
 * ranks) and pleat's (bench/programs/mpiComm.ts: Communicator.allToAllV / allGather / allReduce
 * / barrier in a job on the MPI backend). Each prints one JSON line per measurement: seconds
 * per collective, the slowest rank's, median of the repetitions. Both run with 2 and with 4
 * processes, alternating engine and pleat for `rounds` rounds; each figure is the best of its
 * rounds (other load on a shared machine only slows a round down), and the engine's is also
 * the best of its two ways of waiting (engineModes).
 *
 * Rows, P ranks, N bytes of float32 per peer (1, 4 and 16 MiB):
 *   allToAllV, allGather  bandwidth per rank = bytes each rank receives from the others,
 *                         (P - 1) x N, per second; limit = the engine's bandwidth in this run,
 *                         target = 0.8 x that (the budget: at least 0.8 of the engine).
 *   allReduce 4 B, barrier  latency in us; limit = the engine's latency in this run (a floor:
 *                         ratio = pleat / engine, the cost over the engine), target = 2 x that
 *                         (the budget: within 2x, i.e. engine / pleat >= 0.5).
 *
 * What pleat pays over the engine on every collective: an allgather of every member's
 * signature (its guard against mismatched ops and sizes) before the data op, the hop from the
 * JS thread to the addon's engine thread and back, and the engine thread's MPI_Test polling
 * instead of MPI_Wait. Two diagnostic rows (no target) split the allReduce latency: the addon
 * alone awaited from JS, one op (the hop) and the signatures + data (pleat's two steps without
 * its transport), each against the engine's allReduce. Skipped, with the reason on stderr and no rows, when mpirun, the MPI
 * addon or the engine program is missing.
 */
import { spawn } from "node:child_process"
import { accessSync, constants, existsSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import * as MpiAddon from "../../dist/native/MpiAddon.js"
import { type BenchContext, type BenchRecord, record } from "../harness.js"

const sizesMiB = [1, 4, 16]
const worlds = [2, 4]
const rounds = 2
const bandwidthTarget = 0.8
const latencyTarget = 2

const root = fileURLToPath(new URL("../../", import.meta.url))
const engineProgram = path.join(root, "build", "Release", "pleat_mpi_engine_bench")
const pleatProgram = path.join(root, "bench", "programs", "mpiComm.ts")
const programFlags = ["--sizes-mib", sizesMiB.join(","), "--reps", "7", "--latency-reps", "9", "--latency-batch", "100"]

/** One line of either program. */
interface Line {
  readonly program: "engine" | "pleat"
  readonly op: "allToAllV" | "allGather" | "allReduce" | "barrier" | "addonAllReduce" | "addonSignedAllReduce"
  readonly ranks: number
  readonly bytesPerPeer: number
  readonly seconds: number
}

const onPath = (name: string): string | undefined => {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const file = path.join(dir, name)
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {
      // Not in this folder.
    }
  }
  return undefined
}

/** Why the suite cannot run here, or undefined. */
const missing = (): string | undefined => {
  if (onPath("mpirun") === undefined) return "mpirun is not on PATH (Debian: apt-get install openmpi-bin libopenmpi-dev)"
  const addon = MpiAddon.status()
  if (!addon.available) return addon.reason
  if (!existsSync(engineProgram)) return `${engineProgram} is not built (npm run build:native builds it with the MPI addon)`
  return undefined
}

/**
 * mpirun's flags for a one-machine job: every rank may share a core (the machine may have
 * fewer cores than ranks), no binding (each rank runs an engine thread besides Node's), and
 * root allowed when we are root.
 */
const mpirunFlags = (np: number): Array<string> => ["-np", String(np), "--oversubscribe", "--bind-to", "none", ...(process.getuid?.() === 0 ? ["--allow-run-as-root"] : [])]

/**
 * How the engine program waits: Open MPI's default (MPI_Wait spins on the core) and with the
 * spinning wait yielding the core (mpi_yield_when_idle, Open MPI's own setting for a node with
 * more busy processes than cores). Where free cores are fewer than busy threads, a spinning
 * rank takes the core its peer needs to copy; the engine's figure is the better of the two.
 */
const engineModes: ReadonlyArray<ReadonlyArray<string>> = [[], ["--mca", "mpi_yield_when_idle", "1"]]

/** Runs one program under mpirun and returns its lines; rejects with its stderr when it fails. */
const launch = (np: number, command: ReadonlyArray<string>, mca: ReadonlyArray<string> = [], timeoutMs = 600_000): Promise<Array<Line>> =>
  new Promise((resolve, reject) => {
    const child = spawn("mpirun", [...mpirunFlags(np), ...mca, ...command, ...programFlags], { cwd: root, stdio: ["ignore", "pipe", "pipe"], detached: true })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s))
    child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s))
    // mpirun leads its own process group: a hung launch is ended with every rank it started.
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL")
    }, timeoutMs)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      if (code !== 0) return reject(new Error(`mpirun -np ${np} ${command.join(" ")} ended with ${signal ?? code}:\n${stderr.trim()}`))
      const lines = stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Line)
      resolve(lines)
    })
  })

const key = (l: Pick<Line, "op" | "ranks" | "bytesPerPeer">) => `${l.op} ${l.ranks} ${l.bytesPerPeer}`

/** The best (shortest) seconds of each measurement over the rounds. */
const best = (lines: ReadonlyArray<Line>): Map<string, number> => {
  const out = new Map<string, number>()
  for (const l of lines) out.set(key(l), Math.min(out.get(key(l)) ?? Number.POSITIVE_INFINITY, l.seconds))
  return out
}

const label = (bytes: number) => `${bytes / 2 ** 20}MiB`

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const reason = missing()
  if (reason !== undefined) {
    ctx.log(`suite mpi skipped: ${reason}`)
    return []
  }
  const out: Array<BenchRecord> = []
  for (const np of worlds) {
    const engineLines: Array<Line> = []
    const pleatLines: Array<Line> = []
    for (let r = 0; r < rounds; r++) {
      for (const mca of engineModes) {
        ctx.log(`mpi: ${np} ranks, round ${r + 1} of ${rounds}: engine program ${mca.join(" ")}`)
        engineLines.push(...(await launch(np, [engineProgram], mca)))
      }
      ctx.log(`mpi: ${np} ranks, round ${r + 1} of ${rounds}: pleat (bench/programs/mpiComm.ts)`)
      pleatLines.push(...(await launch(np, [process.execPath, "--import", "tsx", pleatProgram])))
    }
    const engine = best(engineLines)
    const pleat = best(pleatLines)
    for (const [k, seconds] of pleat) {
      const [op, , bytesText] = k.split(" ")
      const bytes = Number(bytesText)
      // The addon-alone lines are read against the engine's allReduce.
      const addon = op === "addonAllReduce" || op === "addonSignedAllReduce"
      const reference = engine.get(addon ? key({ op: "allReduce", ranks: np, bytesPerPeer: bytes }) : k)
      if (reference === undefined) throw new Error(`the engine program printed no ${k}`)
      ctx.log(`mpi ${np} ranks ${op} ${bytes} B/peer: pleat ${(seconds * 1e6).toFixed(1)} us, engine ${(reference * 1e6).toFixed(1)} us`)
      if (op === "allToAllV" || op === "allGather") {
        const received = (np - 1) * bytes
        const limit = received / reference / 1e9
        out.push(
          record(ctx, {
            case: `${op} ${np} ranks ${label(bytes)}/peer (mpi), per rank`,
            metric: `bandwidth (limit: engine; target: ${bandwidthTarget} x engine)`,
            value: received / seconds / 1e9,
            unit: "GB/s",
            limit,
            target: bandwidthTarget * limit,
          }),
        )
      } else if (addon) {
        // Diagnostics without a target: the addon awaited from JS, below pleat's transport.
        out.push(
          record(ctx, {
            case: `allReduce 4 B, ${np} ranks (addon alone, ${op === "addonAllReduce" ? "1 op" : "signatures + data"})`,
            metric: "latency (limit: engine)",
            value: seconds * 1e6,
            unit: "us",
            limit: reference * 1e6,
          }),
        )
      } else {
        out.push(
          record(ctx, {
            case: op === "allReduce" ? `allReduce 4 B, ${np} ranks (mpi)` : `barrier, ${np} ranks (mpi)`,
            metric: `latency (limit: engine; target: ${latencyTarget} x engine)`,
            value: seconds * 1e6,
            unit: "us",
            limit: reference * 1e6,
            target: latencyTarget * reference * 1e6,
          }),
        )
      }
    }
  }
  return out
}
