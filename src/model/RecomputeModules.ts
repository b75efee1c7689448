/**
 * RecomputeModules: what selective recompute recomputes in the backward instead of keeping
 * (Megatron-LM's --recompute-modules; tensor/Recompute). Each module's values come out the same
 * bit for bit (every kernel is deterministic); what changes is what a step keeps between its
 * forward and backward, and the work the backward repeats.
 *
 *   core_attn       the attention core: pleat's core keeps no probabilities (flash-style: its
 *                   q, k, v, output and each row's log-sum-exp), so recomputing it frees only
 *                   the log-sum-exps, at the cost of the core's forward again (Megatron-LM's
 *                   default module, where the unfused core keeps its probabilities)
 *   experts         the routed experts' MLPs: fc1, the activation, fc2 (pleat's own module)
 *   moe_act         the routed experts' activation and the product after it (fc2): their
 *                   inputs are kept, the activation's output and the weighted rows are not
 *   mlp             the dense layers' MLPs, their tensor-parallel collectives replayed
 *   shared_experts  the shared experts' MLPs, their collectives replayed
 *   moe             the whole MoE layer after its norm (router, dispatch, experts, combine and
 *                   shared experts), its all-to-alls replayed in the backward
 *   mla_up_proj     multi-latent attention from its latents: the up projections, RoPE and the
 *                   core (its context exchange replayed), so every head's q, k and v are not
 *                   kept (Megatron-LM frees them after the core instead, without running it again)
 *
 * `--recompute selective` alone takes `defaults`: the experts, where the memory is (core_attn
 * was in them until the forty-seventh session: it cost the core's forward and freed next to
 * nothing).
 */
import * as ConfigError from "../errors/ConfigError.js"

/**
 * A module selective recompute can recompute.
 * @category models
 */
export type RecomputeModule = "core_attn" | "experts" | "moe_act" | "mlp" | "shared_experts" | "moe" | "mla_up_proj"

/**
 * Every module, in the order the help lists them.
 * @category configuration
 */
export const all: ReadonlyArray<RecomputeModule> = ["core_attn", "experts", "moe_act", "mlp", "shared_experts", "moe", "mla_up_proj"]

/**
 * What `--recompute selective` recomputes when no modules are named.
 * @category configuration
 */
export const defaults: ReadonlyArray<RecomputeModule> = ["experts"]

/**
 * Whether a run recomputes `module`: selective recompute with it among its modules (or the
 * defaults). Full recompute replays whole layers instead (ModelContext.recompute).
 * @category guards
 */
export const recomputes = (
  c: { readonly recompute?: string | undefined; readonly recomputeModules?: ReadonlyArray<RecomputeModule> | undefined },
  module: RecomputeModule,
): boolean => c.recompute === "selective" && (c.recomputeModules ?? defaults).includes(module)

/**
 * The modules of the settings `recompute` and `recompute-modules` (undefined: the defaults, or no
 * selective recompute); throws a ConfigError naming `recompute-modules` where its list is bad or
 * selective recompute is not on.
 * @category constructors
 */
export const fromSettings = (recompute: string, text: string | undefined): ReadonlyArray<RecomputeModule> | undefined => {
  if (text === undefined) return undefined
  const modules = parse("recompute-modules", text)
  if (ConfigError.isConfigError(modules)) throw modules
  if (recompute !== "selective")
    throw ConfigError.make(
      "recompute-modules",
      text,
      `picks what selective recompute recomputes, and the recompute is ${recompute}`,
      "add --recompute selective, or drop --recompute-modules",
    )
  return modules
}

const isModule = (name: string): name is RecomputeModule => (all as ReadonlyArray<string>).includes(name)

/**
 * The modules of a list written `a,b` (commas or spaces; `none`: no module), or the problem with
 * it, named after `field`.
 * @category constructors
 */
export const parse = (field: string, text: string): ReadonlyArray<RecomputeModule> | ConfigError.ConfigError => {
  if (text === "none") return []
  const names = text.split(/[\s,]+/).filter((n) => n !== "")
  if (names.length === 0) return ConfigError.make(field, text, "names no module", `name one or more of ${all.join(", ")}, separated by commas`)
  const unknown = names.find((n) => !isModule(n))
  if (unknown !== undefined) return ConfigError.make(field, unknown, "is no module pleat recomputes", `use ${all.join(", ")}`)
  return [...new Set(names as Array<RecomputeModule>)]
}
