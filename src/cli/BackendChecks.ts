/**
 * BackendChecks: which backend a training command runs on and what keeps the job from running
 * there, before any work: more ranks than one process hosts, a world that is not the launch's
 * process count on the per-process backends, --workers without worker threads, NCCL that cannot
 * be opened. Each problem is named as the user wrote it (flag or config file key).
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as ChooseBackend from "../runtime/ChooseBackend.js"
import * as DistributedDebug from "../runtime/DistributedDebug.js"
import * as MpiProcess from "../runtime/MpiProcess.js"
import * as NcclOpen from "../runtime/NcclOpen.js"
import * as BadInput from "./BadInput.js"
import type * as RunConfig from "./RunConfig.js"

/**
 * The most ranks one process hosts, by backend. Every rank of these backends lives in this
 * process: a fiber each (measured with the default model and one sequence per rank: 256 ranks
 * 1.0 GB and 21 s for one step, 512 ranks 1.8 GB and 54 s, so 1024 about 4 GB), or a worker
 * thread each (about 80 MB per rank under tsx: 64 ranks about 5 GB). Above these, a run would
 * exhaust memory or time before its first step, in silence; it is refused before any work.
 * @category configuration
 */
export const maxRanks: Readonly<Record<ChooseBackend.Name, number>> = { local: 1024, "local-zero-copy": 1024, threads: 64, "threads-zero-copy": 64, mpi: 1 << 20, nccl: 1 << 20 }

/** A world larger than the backend hosts in one process, named as the user wrote it. */
const tooManyRanks = (d: RunConfig.Decoded, backend: ChooseBackend.Name): ConfigError.ConfigError | undefined => {
  const world = d.config.world
  const limit = maxRanks[backend]
  if (world <= limit) return undefined
  const source = d.sources.world
  const field = source?._tag === "file" ? `"world" in ${source.file}` : "--world"
  const roomier = backend.startsWith("threads") ? `, or --backend local (up to ${maxRanks.local} ranks)` : ""
  return ConfigError.make(
    field,
    world,
    `is more ranks than the ${backend} backend hosts in one process (at most ${limit}: every rank lives in this process)`,
    `use --world ${limit} or less${roomier}`,
  )
}

/** The nccl backend where NCCL (or a GPU for it) cannot be opened: why, and the fix. */
const ncclMissing = (backend: ChooseBackend.Name): ConfigError.ConfigError | undefined => {
  if (backend !== "nccl") return undefined
  try {
    DistributedDebug.hostChecks()
    NcclOpen.open()
    return undefined
  } catch (error) {
    if (ConfigError.isConfigError(error)) return error
    throw error
  }
}

/** --workers on a backend without worker threads, named as the user wrote it. */
const workersWithoutThreads = (d: RunConfig.Decoded, backend: ChooseBackend.Name): ConfigError.ConfigError | undefined => {
  const workers = d.config.workers
  if (workers === undefined || backend.startsWith("threads")) return undefined
  const source = d.sources.workers
  const field = source?._tag === "file" ? `"workers" in ${source.file}` : "--workers"
  return ConfigError.make(field, workers, `sets the worker threads of the threads backends, but the backend is ${backend}`, "drop it, or add --backend threads")
}

/**
 * The backend: one given by flag or config file wins, else the launch environment's, else the
 * default. The launch environment is always checked (a launcher's many processes would each run
 * the whole job, whatever the flag); its problems are the user's, as flags' are.
 * @category constructors
 */
export const chosenBackend = (configured: RunConfig.RunConfig["backend"], byDefault: boolean): RunConfig.RunConfig["backend"] => {
  try {
    const launched = ChooseBackend.fromEnvironment(process.env)
    if (launched === "mpi" && !byDefault && !ChooseBackend.isPerProcess(configured)) {
      // Every process of the launch would run every rank of the job.
      throw ConfigError.make(
        "--backend",
        configured,
        `runs every rank inside one process, but ${MpiProcess.worldSize()} processes were launched`,
        "drop --backend (mpi is chosen under a launcher), use --backend nccl (GPUs), or start one process",
      )
    }
    return byDefault ? (launched ?? configured) : configured
  } catch (error) {
    if (ConfigError.isConfigError(error)) throw new BadInput.BadInput({ problems: [error] })
    throw error
  }
}

/** On the mpi and nccl backends the world is the number of processes, named as the user wrote it. */
const launchMismatch = (d: RunConfig.Decoded, backend: ChooseBackend.Name): ConfigError.ConfigError | undefined => {
  if (!ChooseBackend.isPerProcess(backend)) return undefined
  const source = d.sources.world
  const field = source?._tag === "file" ? `"world" in ${source.file}` : "--world"
  return MpiProcess.worldProblem(field, d.config.world)
}

/**
 * Every problem of running the decoded job on `backend` (none: it can run there).
 * @category guards
 */
export const problemsOf = (d: RunConfig.Decoded, backend: ChooseBackend.Name): Array<ConfigError.ConfigError> =>
  [tooManyRanks(d, backend), launchMismatch(d, backend), workersWithoutThreads(d, backend), ncclMissing(backend)].filter((p) => p !== undefined)
