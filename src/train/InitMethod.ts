/**
 * InitMethod: Megatron-Core's initialisation at a given standard deviation (--init-method-std F):
 * every weight drawn from N(0, F), the embedding and the output layer included, except those that
 * write into the residual stream (the attention's output projection, the dense, expert and shared
 * MLPs' down projections: ParamSpec.residual), drawn from N(0, F / sqrt(2 L)) over the model's L
 * layers (Megatron's output_layer_init_method, scaled_init_method_normal); norms start at one and
 * biases at zero as always. Without it pleat's own initialisation stands (Params.specs: std
 * 0.5 / sqrt(H), half that for the down projections).
 */
import * as ConfigError from "../errors/ConfigError.js"
import type * as Params from "./Params.js"

/**
 * Throws a ConfigError unless `std` is undefined or a finite number above 0.
 * @category guards
 */
export const check = (std: number | undefined): void => {
  if (std !== undefined && !(std > 0 && Number.isFinite(std)))
    throw ConfigError.make("init-method-std", std, "is not a number above 0", "pass --init-method-std F with F > 0 (Megatron's default 0.02; DeepSeek-V3's 0.006)")
}

/**
 * `specs` with Megatron's standard deviations for `std` over a model of `layers` layers; `std`
 * undefined leaves them as they are. Only the spread changes: each parameter's values are the same
 * normal draws (the seed's, NormalStream) scaled, so every mapping still starts from the same model.
 * @category constructors
 */
export const withStd = (specs: ReadonlyArray<Params.ParamSpec>, std: number | undefined, layers: number): ReadonlyArray<Params.ParamSpec> => {
  if (std === undefined) return specs
  const residual = std / Math.sqrt(2 * layers)
  return specs.map((spec) => {
    if (spec.std === 0 || spec.zero === true) return spec
    // once a job: the parameters' specs
    return { ...spec, std: spec.residual === true ? residual : std }
  })
}
