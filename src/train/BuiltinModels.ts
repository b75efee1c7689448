/**
 * BuiltinModels: the models pleat ships, defined through the same public API a user's model uses
 * (ModelDefinition, Params, the model operators): the trainer loads them by reference, as it
 * loads a user's.
 *
 * - mixtral: the Mixtral-like model (attention, then MoE every `moeEvery`-th layer, else a dense
 *   SwiGLU MLP; shared experts, tied or separate embeddings as ModelConfig says).
 */
import * as Mixtral from "../model/Mixtral.js"
import * as ModelDefinition from "./ModelDefinition.js"
import * as Params from "./Params.js"

/**
 * The Mixtral-like model.
 * @category models
 */
export const mixtral: ModelDefinition.ModelDefinition = { name: "mixtral", params: Params.specs, forward: Mixtral.forward }

/**
 * The reference the trainer loads when a run names no model definition.
 * @category configuration
 */
export const defaultRef: ModelDefinition.Ref = ModelDefinition.ref(import.meta.url, "mixtral")
