/**
 * ChooseBackend: the one place that turns a backend's name into its Layer.
 *
 * Names: "local" (fibers of this process, contributions copied), "local-zero-copy" (read in
 * place), "threads" (worker threads over shared memory), "threads-zero-copy" (shared-memory
 * tensors read in place). The MPI and NCCL backends join here,
 * together with the launch environment's say (a job started by mpirun will pick "mpi" when no
 * name is given).
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ConfigError from "../errors/ConfigError.js"
import { Backend } from "./Backend.js"
import * as LocalBackend from "./LocalBackend.js"
import * as ThreadsBackend from "./ThreadsBackend.js"

/**
 * The backends there are.
 * @category configuration
 */
export const names = ["local", "local-zero-copy", "threads", "threads-zero-copy"] as const

/**
 * A backend's name.
 * @category models
 */
export type Name = (typeof names)[number]

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
 * The Layer of the named backend (default "local").
 * @category layers
 */
export const layer = (name: string = "local"): Layer.Layer<Backend, UnknownBackend> => {
  if (!isName(name)) return Layer.effect(Backend, Effect.fail(new UnknownBackend({ name })))
  switch (name) {
    case "local":
      return LocalBackend.layer()
    case "local-zero-copy":
      return LocalBackend.layer({ copy: false })
    case "threads":
      return ThreadsBackend.layer()
    case "threads-zero-copy":
      return ThreadsBackend.layer({ copy: false })
  }
}

/** The variables launchers set to the number of processes of the job. */
const launchers: ReadonlyArray<readonly [string, string]> = [
  ["OMPI_COMM_WORLD_SIZE", "mpirun (Open MPI)"],
  ["PMI_SIZE", "an MPI launcher (PMI)"],
  ["SLURM_NTASKS", "srun (Slurm)"],
]

/**
 * The backend the launch environment asks for when no name was given: PLEAT_BACKEND if set
 * (checked like a flag), else undefined. A launcher that started more than one process is a
 * ConfigError naming the launcher and the fix, since every process would run the whole job.
 * @category constructors
 */
export const fromEnvironment = (env: Readonly<Record<string, string | undefined>>): Name | undefined => {
  for (const [variable, launcher] of launchers) {
    const size = Number(env[variable] ?? "1")
    if (Number.isInteger(size) && size > 1) {
      throw ConfigError.make(
        variable,
        size,
        `${launcher} started ${size} processes, but pleat has no multi-process backend yet (MPI comes next), so each process would run the whole job`,
        "start one process (drop the launcher) and let --backend local or threads run the ranks",
      )
    }
  }
  const named = env.PLEAT_BACKEND
  if (named === undefined || named === "") return undefined
  if (!isName(named)) throw ConfigError.make("PLEAT_BACKEND", named, "is not a backend", `use one of ${names.join(", ")}, or unset it`)
  return named
}
