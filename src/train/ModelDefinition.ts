/**
 * ModelDefinition: a model pleat can train, as two functions: its parameters (names, shapes,
 * sharding, initialization: Params.ParamSpec) and the forward of one model chunk on one rank for
 * one micro-batch (embedding on the first chunk, layers, output and loss on the last). The
 * trainer, its schedules, checkpoints, optimizers and backends work from these two alone, so a
 * user's model (a different block, a dense-MoE hybrid) trains exactly as the built-in one does;
 * the built-in Mixtral-like model is one such definition (BuiltinModels.mixtral).
 *
 * A definition crosses to the ranks as a reference (`Ref`: a module URL and the name of the
 * export), as rank programs do, so worker threads and MPI processes load the same definition.
 */
import type * as Effect from "effect/Effect"
import type { Communicator } from "../comm/Communicator.js"
import type * as Mixtral from "../model/Mixtral.js"
import type * as ModelContext from "../model/ModelContext.js"
import * as RankProgram from "../runtime/RankProgram.js"
import type * as Tensor from "../tensor/Tensor.js"
import type * as ModelConfig from "./ModelConfig.js"
import type * as Params from "./Params.js"

/**
 * The forward of one chunk: `input` is the previous stage's hidden rows (undefined on the first
 * chunk, which embeds `tokens`); the last chunk returns the loss, the others the hidden rows.
 * @category models
 */
export type Forward = (
  c: ModelContext.ModelContext,
  chunk: Mixtral.Chunk,
  input: Tensor.Tensor | undefined,
  tokens: ModelContext.Tokens,
) => Effect.Effect<Mixtral.ChunkOutput, unknown, Communicator>

/**
 * A model as the trainer sees it.
 * @category models
 */
export interface ModelDefinition {
  readonly name: string
  /** Every parameter of the model with sizes `m`, in a fixed order; `layer` places it on a stage. */
  readonly params: (m: ModelConfig.ModelConfig) => ReadonlyArray<Params.ParamSpec>
  readonly forward: Forward
}

/**
 * Where a definition lives: a module URL and its export's name.
 * @category models
 */
export interface Ref {
  readonly module: string
  readonly export: string
}

/**
 * A reference to the definition exported as `name` by `module` (a URL, `import.meta.url`, or a
 * path).
 * @category constructors
 */
export const ref = (module: string | URL, name: string): Ref => ({ module: RankProgram.moduleUrl(module), export: name })

const isDefinition = (u: unknown): u is ModelDefinition => {
  const d = u as Partial<ModelDefinition> | undefined
  return typeof d === "object" && d !== null && typeof d.name === "string" && typeof d.params === "function" && typeof d.forward === "function"
}

/**
 * Imports a definition; a module without such an export is an error naming what it has.
 * @category constructors
 */
export const load = async (r: Ref): Promise<ModelDefinition> => {
  const module = (await import(r.module)) as Record<string, unknown>
  const found = module[r.export]
  if (isDefinition(found)) return found
  const definitions = Object.keys(module)
    .filter((k) => isDefinition(module[k]))
    .sort()
  throw new Error(`${r.module} has no model definition "${r.export}" (an object with name, params and forward; definitions there: ${definitions.join(", ") || "none"})`)
}
