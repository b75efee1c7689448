/**
 * ActivationFlags: the gated MLPs' activation from --quick-geglu, --glu-linear-offset and
 * --activation-func-clamp-value (Megatron-Core's names and meaning; tensor/ops/GatedActivation):
 * absent when all three leave SwiGLU as it is.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as GatedActivation from "../tensor/ops/GatedActivation.js"
import type * as RunConfig from "./RunConfig.js"

/**
 * The model's `glu` field (none for plain SwiGLU); throws a ConfigError for a clamp that is not
 * above 0 or an offset that is not finite.
 * @category constructors
 */
export const gluFieldOf = (c: RunConfig.RunConfig): { readonly glu?: GatedActivation.Glu } => {
  const offset = c["glu-linear-offset"] ?? 0
  const limit = c["activation-func-clamp-value"]
  if (!Number.isFinite(offset)) throw ConfigError.make("glu-linear-offset", offset, "is not a finite number", "write --glu-linear-offset F, such as 1 (GPT-OSS's)")
  if (limit !== undefined && !(limit > 0 && Number.isFinite(limit)))
    throw ConfigError.make("activation-func-clamp-value", limit, "is not a finite number above 0", "write --activation-func-clamp-value F, such as 7 (GPT-OSS's)")
  const glu: GatedActivation.Glu = { alpha: c["quick-geglu"] ? GatedActivation.quickGeluAlpha : 1, offset, ...(limit === undefined ? {} : { limit }) }
  return GatedActivation.isPlain(glu) ? {} : { glu }
}
