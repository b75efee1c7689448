/**
 * RankProgram: what every rank of a job runs, described as data so that it can cross into a
 * worker thread (or, later, another process): the URL of a module, the name of its export,
 * and cloneable args. The export is a function `(rank, args) => Effect<A, E, Communicator |
 * RankEvents>`: it sees its Communicator and its RankEvents and nothing of the backend, so the
 * same program runs on every backend (the local backend imports the same module in process).
 *
 *   // in src/train/TrainProgram.ts
 *   export const program = (rank: number, args: unknown) => Effect.gen(function* () { ... })
 *   export const of = (args: TrainArgs) => RankProgram.make(import.meta.url, "program", args)
 */
import type * as Effect from "effect/Effect"
import path from "node:path"
import { pathToFileURL } from "node:url"
import type { Communicator } from "../comm/Communicator.js"
import type { RankEvents } from "./RankEvents.js"

/**
 * A rank program as its export must be typed.
 * @category models
 */
export type Program<A = unknown, E = unknown> = (rank: number, args: unknown) => Effect.Effect<A, E, Communicator | RankEvents>

/**
 * A rank program as data.
 * @category models
 */
export interface Ref<Args = unknown> {
  /** The module's URL (file: or data:). */
  readonly module: string
  /** The name of the function export. */
  readonly export: string
  /** Given to every rank, structured-cloned (each rank gets its own copy). */
  readonly args: Args
}

/**
 * A module's URL from a URL, a URL string or a file path (relative to the cwd).
 * @category mapping
 */
export const moduleUrl = (m: string | URL): string => {
  if (m instanceof URL) return m.href
  // A scheme (file:, data:) but not a Windows drive letter.
  if (/^[a-z][a-z0-9+.-]+:/i.test(m)) return m
  return pathToFileURL(path.resolve(m)).href
}

/**
 * Describes a rank program.
 * @category constructors
 */
export const make = <Args>(module: string | URL, name: string, args: Args): Ref<Args> => ({ module: moduleUrl(module), export: name, args })

/**
 * Throws a TypeError naming the problem when the args cannot cross into a worker.
 * @category guards
 */
export const checkCloneable = (ref: Ref): void => {
  try {
    structuredClone(ref.args)
  } catch (error) {
    throw new TypeError(`the args of ${ref.export} cannot be sent to the ranks (they must be structured-cloneable): ${error instanceof Error ? error.message : String(error)}`)
  }
}

/**
 * Imports the module and finds the export (a defect naming what is there when it is missing).
 * @category constructors
 */
export const load = async (ref: Ref): Promise<Program> => {
  const module = (await import(ref.module)) as Record<string, unknown>
  const program = module[ref.export]
  if (typeof program === "function") return program as Program
  const found = Object.keys(module)
    .filter((k) => typeof module[k] === "function")
    .sort()
  throw new Error(`${ref.module} has no function export "${ref.export}" (function exports: ${found.join(", ") || "none"})`)
}
