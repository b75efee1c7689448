/**
 * Launcher: what the process launcher says about this process, read from its environment:
 * Open MPI's mpirun (OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK), PMIx (PMIX_RANK), an MPI
 * launcher with PMI (PMI_RANK / PMI_SIZE), Slurm's srun (SLURM_PROCID / SLURM_NTASKS /
 * SLURM_LOCALID) and torchrun-style variables (RANK / WORLD_SIZE / LOCAL_RANK). The first
 * launcher whose variables are set wins, in that order. A process no launcher started is rank 0
 * of 1.
 */
import * as ConfigError from "../errors/ConfigError.js"

/**
 * This process's place in the job, as the launcher told it.
 * @category models
 */
export interface Launch {
  /** The launcher's name ("mpirun (Open MPI)", "srun (Slurm)", ...), or "none". */
  readonly launcher: string
  /** The variable that gave the world size (for messages), or "" when none did. */
  readonly sizeVariable: string
  readonly rank: number
  readonly size: number
  readonly localRank: number
  /** Processes of the job on this machine (the launcher's count; else the world size). */
  readonly localSize: number
  /** Whether MPI can join these processes (every launcher but torchrun-style variables). */
  readonly mpi: boolean
}

interface Source {
  readonly launcher: string
  readonly rank: string
  readonly size: string | undefined
  readonly local: string | undefined
  readonly localSize: string | undefined
  readonly mpi: boolean
}

const sources: ReadonlyArray<Source> = [
  {
    launcher: "mpirun (Open MPI)",
    rank: "OMPI_COMM_WORLD_RANK",
    size: "OMPI_COMM_WORLD_SIZE",
    local: "OMPI_COMM_WORLD_LOCAL_RANK",
    localSize: "OMPI_COMM_WORLD_LOCAL_SIZE",
    mpi: true,
  },
  { launcher: "PMIx", rank: "PMIX_RANK", size: undefined, local: undefined, localSize: undefined, mpi: true },
  { launcher: "an MPI launcher (PMI)", rank: "PMI_RANK", size: "PMI_SIZE", local: "MPI_LOCALRANKID", localSize: "MPI_LOCALNRANKS", mpi: true },
  { launcher: "srun (Slurm)", rank: "SLURM_PROCID", size: "SLURM_NTASKS", local: "SLURM_LOCALID", localSize: "SLURM_NTASKS_PER_NODE", mpi: true },
  { launcher: "torchrun-style variables", rank: "RANK", size: "WORLD_SIZE", local: "LOCAL_RANK", localSize: "LOCAL_WORLD_SIZE", mpi: false },
]

type Env = Readonly<Record<string, string | undefined>>

const count = (env: Env, variable: string | undefined, fallback: number): number => {
  if (variable === undefined) return fallback
  const text = env[variable]
  if (text === undefined || text === "") return fallback
  const n = Number(text)
  if (!Number.isInteger(n) || n < 0) throw ConfigError.make(variable, text, "is not a non-negative integer", "unset it or let the launcher set it")
  return n
}

/**
 * Reads the launch from an environment (a ConfigError for a variable that is not a number).
 * @category constructors
 */
export const fromEnvironment = (env: Env = process.env): Launch => {
  for (const s of sources) {
    if (env[s.rank] === undefined || env[s.rank] === "") continue
    const rank = count(env, s.rank, 0)
    // PMIx alone carries no size variable that every version sets: MPI reports it after init.
    const size = count(env, s.size, rank + 1)
    if (rank >= size) throw ConfigError.make(s.rank, rank, `is not below the world size ${size} (${s.size})`, "let the launcher set both")
    // SLURM_NTASKS_PER_NODE may read "4(x2)": the leading count is this machine's.
    const localText = s.localSize === undefined ? undefined : /^\d+/.exec(env[s.localSize] ?? "")?.[0]
    const localSize = localText === undefined ? size : Math.max(1, Number(localText))
    return { launcher: s.launcher, sizeVariable: s.size ?? "", rank, size, localRank: count(env, s.local, 0), localSize, mpi: s.mpi }
  }
  return { launcher: "none", sizeVariable: "", rank: 0, size: 1, localRank: 0, localSize: 1, mpi: false }
}

/**
 * Whether this process is one of several that a launcher started (so the job spans processes).
 * @category guards
 */
export const isMultiProcess = (launch: Launch): boolean => launch.size > 1 || (launch.mpi && launch.sizeVariable === "")
