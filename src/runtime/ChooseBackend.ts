/**
 * ChooseBackend: the one place that turns a backend's name into its Layer.
 *
 * Names: "local" (fibers of this process, contributions copied), "local-zero-copy" (read in
 * place), "threads" (worker threads over shared memory), "threads-zero-copy" (shared-memory
 * tensors read in place), "mpi" (one rank per process of an MPI launch), "nccl" (the same, the
 * collectives' data on NCCL: one GPU per process). The launch
 * environment has its say too: processes started by mpirun or srun pick "mpi" when no name is
 * given (Launcher).
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ConfigError from "../errors/ConfigError.js"
import { Backend } from "./Backend.js"
import * as Launcher from "./Launcher.js"
import * as LocalBackend from "./LocalBackend.js"
import * as MpiBackend from "./MpiBackend.js"
import * as NcclBackend from "./NcclBackend.js"
import * as ThreadsBackend from "./ThreadsBackend.js"

/**
 * The backends there are.
 * @category configuration
 */
export const names = ["local", "local-zero-copy", "threads", "threads-zero-copy", "mpi", "nccl"] as const

/**
 * A backend's name.
 * @category models
 */
export type Name = (typeof names)[number]

/**
 * The backends whose ranks are the processes of a launch, one each (their world is the number
 * of processes); every other backend runs all ranks inside one process.
 * @category configuration
 */
export const perProcess = ["mpi", "nccl"] as const

/**
 * A backend that runs every rank inside this process.
 * @category models
 */
export type InProcessName = Exclude<Name, (typeof perProcess)[number]>

/**
 * Whether a backend's ranks are the processes of a launch.
 * @category guards
 */
export const isPerProcess = (name: Name): boolean => (perProcess as ReadonlyArray<Name>).includes(name)

/**
 * No backend has that name.
 * @category errors
 */
export class UnknownBackend extends Data.TaggedError("UnknownBackend")<{ readonly name: string }> {
  override get message(): string {
    return `unknown backend "${this.name}" (known: ${names.join(", ")})`
  }
}

/**
 * Whether a string names a backend.
 * @category guards
 */
export const isName = (name: string): name is Name => (names as ReadonlyArray<string>).includes(name)

/**
 * Settings of a backend that only some backends have.
 * @category models
 */
export interface BackendOptions {
  /** threads backends: the most worker threads a job uses (ThreadsJob's `workers`). */
  readonly workers?: number
}

/**
 * The Layer of the named backend (default "local").
 * @category layers
 */
export const layer = (name: string = "local", options: BackendOptions = {}): Layer.Layer<Backend, UnknownBackend> => {
  if (!isName(name)) return Layer.effect(Backend, Effect.fail(new UnknownBackend({ name })))
  switch (name) {
    case "local":
      return LocalBackend.layer()
    case "local-zero-copy":
      return LocalBackend.layer({ copy: false })
    case "threads":
      return ThreadsBackend.layer(options)
    case "threads-zero-copy":
      // once a job: a backend's options
      return ThreadsBackend.layer({ ...options, copy: false })
    case "mpi":
      return MpiBackend.layer()
    case "nccl":
      return NcclBackend.layer()
  }
}

/**
 * The backend the launch environment asks for when no name was given: "mpi" when an MPI
 * launcher started several processes, else PLEAT_BACKEND if set (checked like a flag), else
 * undefined. Several processes from a launcher MPI cannot join (torchrun-style variables) are
 * a ConfigError naming the fix, since every process would run the whole job.
 * @category constructors
 */
export const fromEnvironment = (env: Readonly<Record<string, string | undefined>>): Name | undefined => {
  const launch = Launcher.fromEnvironment(env)
  if (Launcher.isMultiProcess(launch)) {
    if (launch.mpi) return "mpi"
    throw ConfigError.make(
      launch.sizeVariable,
      launch.size,
      `${launch.launcher} started ${launch.size} processes, but pleat joins processes only through MPI`,
      "start them with mpirun, srun or pleat launch -n N, or start one process and let --backend local or threads run the ranks",
    )
  }
  const named = env.PLEAT_BACKEND
  if (named === undefined || named === "") return undefined
  if (!isName(named)) throw ConfigError.make("PLEAT_BACKEND", named, "is not a backend", `use one of ${names.join(", ")}, or unset it`)
  return named
}
