/**
 * DefinitionFlag: `--definition FILE#EXPORT` of `pleat train` and `pleat verify`, a model of
 * the user's own (a module whose named export is a ModelDefinition), checked before any rank
 * starts: the text's form and the file at once, the export by loading it (a ConfigError, exit 2,
 * naming the definitions the module has when the name is wrong).
 */
import { existsSync } from "node:fs"
import * as Effect from "effect/Effect"
import * as ConfigError from "../errors/ConfigError.js"
import * as ModelDefinition from "../train/ModelDefinition.js"

const fix = "write --definition FILE#EXPORT: a .js or .mjs module (or .ts under tsx) whose named export is a ModelDefinition (see examples/08)"

/**
 * The reference `--definition` names, or a ConfigError on its form or a missing file.
 * @category constructors
 */
export const parse = (text: string): ModelDefinition.Ref | ConfigError.ConfigError => {
  const at = text.lastIndexOf("#")
  if (at <= 0 || at === text.length - 1) return ConfigError.make("--definition", text, "is not FILE#EXPORT", fix)
  const file = text.slice(0, at)
  if (!existsSync(file)) return ConfigError.make("--definition", text, `names ${file}, which does not exist`, fix)
  return ModelDefinition.ref(file, text.slice(at + 1))
}

/**
 * Loads the definition once in the driver, so that a wrong export fails before the job, as a
 * ConfigError naming the flag.
 * @category constructors
 */
export const check = (ref: ModelDefinition.Ref | undefined, text: string | undefined): Effect.Effect<void, ConfigError.ConfigError> =>
  ref === undefined
    ? Effect.void
    : Effect.asVoid(
        Effect.tryPromise({
          try: () => ModelDefinition.load(ref),
          catch: (error) => ConfigError.make("--definition", text, error instanceof Error ? error.message.replace(/\s+/g, " ") : String(error), fix),
        }),
      )
