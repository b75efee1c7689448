/**
 * MegatronRewrites: the pieces of MegatronArgs' rewriting that are rules of their own: reading a
 * command line's flags, Megatron-LM's load-balancing lists as pleat's --aux-loss, its virtual
 * stages from layers per virtual stage, the recompute modules pleat's layers have, and the notice
 * of the architecture defaults pleat does not follow.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as Blend from "../train/Blend.js"
import * as MegatronIndex from "../train/MegatronIndex.js"
import * as RecomputeModules from "../model/RecomputeModules.js"
import * as Flags from "./Flags.js"

/** Megatron-LM's recompute modules pleat takes without recomputing anything, and why. */
const recomputeWithoutEffect: Readonly<Record<string, string>> = {
  layernorm: "pleat's norms keep only their input, which the layer keeps anyway",
}

/**
 * --recompute-modules as Megatron-LM writes it (names after the flag, space-separated) or as pleat
 * does (comma-separated): pleat's flag with the modules it recomputes ("none" where it recomputes
 * none of them), the modules taken without effect, or the problem with a name.
 * @category mapping
 */
export const recomputeModulesOf = (list: ReadonlyArray<string>): { readonly flag: string; readonly noEffect: ReadonlyArray<string> } | ConfigError.ConfigError => {
  const names = list.flatMap((n) => n.split(",")).filter((n) => n !== "")
  if (names.length === 1 && names[0] === "none") return { flag: "--recompute-modules=none", noEffect: [] }
  const known = [...RecomputeModules.all, ...Object.keys(recomputeWithoutEffect)]
  const unknown = names.find((n) => !known.includes(n))
  if (unknown !== undefined || names.length === 0)
    return ConfigError.make("--recompute-modules", unknown ?? list.join(" "), "names no module pleat's layers have", `use ${known.join(", ")}`)
  const kept = names.filter((n) => !Object.hasOwn(recomputeWithoutEffect, n))
  const without = names.filter((n) => Object.hasOwn(recomputeWithoutEffect, n)).map((n) => `--recompute-modules ${n} (${recomputeWithoutEffect[n]})`)
  return { flag: `--recompute-modules=${kept.length === 0 ? "none" : kept.join(",")}`, noEffect: without }
}

const balancingTypes: Readonly<Record<string, string>> = { aux_loss: "aux", seq_aux_loss: "seq_aux", global_aux_loss: "global_aux" }

/**
 * Megatron-LM values pleat spells otherwise, by flag: the value pleat takes, and a notice where
 * the choice is Megatron-LM's alone (the flex dispatcher's DeepEP and HybridEP are GPU kernels
 * with the all-to-all dispatcher's contract, semantics.md 2.4.3).
 * @category configuration
 */
export const valueRewrites: Readonly<Record<string, Readonly<Record<string, { readonly value: string; readonly note?: string }>>>> = {
  "lr-decay-style": { WSD: { value: "wsd" }, minus_sqrt: { value: "minus-sqrt" } },
  "lr-wsd-decay-style": { minus_sqrt: { value: "minus-sqrt" } },
  "moe-token-dispatcher-type": {
    flex: { value: "alltoall", note: "--moe-token-dispatcher-type flex (pleat's all-to-all dispatcher: the same contract; DeepEP and HybridEP are GPU kernels)" },
  },
}

/**
 * A Megatron-LM flag whose value becomes pleat flags: what a missing value is written as, and
 * the flags of a value (or the problem with it).
 * @category models
 */
export interface ValueExpansion {
  readonly placeholder: string
  readonly expand: (value: string) => ReadonlyArray<string> | ConfigError.ConfigError
}

/**
 * The Megatron-LM flags whose value becomes pleat flags: the causal window, RoPE's type and linear
 * position interpolation.
 * @category configuration
 */
export const valueExpansions: Readonly<Record<string, ValueExpansion>> = {
  "window-size": {
    placeholder: "L,0",
    expand: (v) => {
      const match = /^\(?\s*(-?\d+)\s*,\s*(-?\d+)\s*\)?$/.exec(v)
      if (match === null || Number(match[1]) < 0 || Number(match[2]) !== 0)
        return ConfigError.make("--window-size", v, "is not a causal window L,0 (L tokens back, none ahead)", "write --window-size L,0, or pleat's --sliding-window L+1")
      return [`--sliding-window=${Number(match[1]) + 1}`]
    },
  },
  "position-embedding-type": {
    placeholder: "rope",
    expand: (v) =>
      v === "yarn"
        ? ["--rope-type=yarn"]
        : v === "rope"
          ? []
          : // No positional encoding at all: every layer a NoPE layer.
            v === "none"
            ? ["--no-rope-freq=1"]
            : ConfigError.make("--position-embedding-type", v, "is not what pleat trains: pleat's positions are RoPE (or YaRN's), or none", "write --position-embedding-type rope"),
  },
  "rotary-seq-len-interpolation-factor": { placeholder: "N", expand: (v) => ["--rope-type=linear", `--rotary-scaling-factor=${v}`] },
}

/**
 * The Megatron-LM switches rewritten as one pleat flag each.
 * @category configuration
 */
export const switchRewrites: Readonly<Record<string, string>> = {
  bf16: "--precision=bf16",
  "recompute-activations": "--recompute=selective",
  "moe-apply-probs-on-input": "--probs-at=input",
  "use-rope-scaling": "--rope-type=llama3",
}

/** The load-balancing types that are routers of their own: the type, its name, pleat's flag. */
const routerTypes = [
  ["sinkhorn", "Sinkhorn routing", "--sinkhorn"],
  ["quantile_balancing", "quantile balancing", "--quantile-balancing"],
] as const

/** A flag of the command line: its name, its value written with `=`, and where it stands. */
export interface Token {
  readonly name: string
  readonly inline: string | undefined
}

export const tokenOf = (arg: string): Token | undefined => {
  if (!arg.startsWith("--") || arg.length === 2) return undefined
  const eq = arg.indexOf("=")
  return eq >= 0 ? { name: arg.slice(2, eq), inline: arg.slice(eq + 1) } : { name: arg.slice(2), inline: undefined }
}

export const isFlag = (arg: string | undefined): boolean => arg?.startsWith("--") === true && arg.length > 2

/** The notice for Megatron-LM's architecture defaults a command leaves in place. */
export const unfollowedOf = (seen: ReadonlySet<string>, quickGeglu: boolean): Array<string> => {
  const out: Array<string> = []
  if (!seen.has("normalization")) out.push("LayerNorm (no --normalization RMSNorm): pleat's norms are RMSNorm")
  if (!seen.has("swiglu") && !quickGeglu) out.push("GeLU MLPs (no --swiglu or --quick-geglu): pleat's are gated (SwiGLU)")
  if (!seen.has("position-embedding-type") && !seen.has("no-position-embedding")) out.push("learned positions (no --position-embedding-type rope): pleat's are RoPE")
  if (!seen.has("attention-dropout") || !seen.has("hidden-dropout")) out.push("dropout 0.1 (no --attention-dropout 0 --hidden-dropout 0): pleat has none")
  return out
}

/**
 * The value of the first of `names` on the command line (`--name value` or `--name=value`), if any.
 * @category mapping
 */
export const given = (argv: ReadonlyArray<string>, names: ReadonlyArray<string>): string | undefined => {
  for (let i = 0; i < argv.length; i++) {
    const token = tokenOf(argv[i] as string)
    if (token !== undefined && names.includes(token.name)) return token.inline ?? argv[i + 1]
  }
  return undefined
}

/**
 * Megatron-LM's virtual stages per pipeline rank from --num-layers-per-virtual-pipeline-stage N:
 * (layers / pp) / N, from the command line's layers and pipeline size (Megatron-LM's pp default 1).
 */
const virtualStages = (argv: ReadonlyArray<string>, text: string): number | ConfigError.ConfigError => {
  const field = "--num-layers-per-virtual-pipeline-stage"
  const n = Number(text)
  const problem = Flags.integerProblem(text, {}, `write ${field}`)
  if (problem !== undefined) return ConfigError.make(field, text, problem.reason, problem.fix)
  if (given(argv, ["vpp", "num-virtual-stages-per-pipeline-rank"]) !== undefined)
    return ConfigError.make(field, text, "and --num-virtual-stages-per-pipeline-rank both give the virtual stages", "give one of them")
  const layers = Number(given(argv, ["num-layers", "layers"]))
  const pp = Number(given(argv, ["pipeline-model-parallel-size", "pp"]) ?? 1)
  if (!Number.isSafeInteger(layers) || !Number.isSafeInteger(pp) || pp < 1)
    return ConfigError.make(field, text, "needs --num-layers (and --pipeline-model-parallel-size) on the command line", "give them, or --num-virtual-stages-per-pipeline-rank")
  if (layers % pp !== 0 || (layers / pp) % n !== 0)
    return ConfigError.make(field, text, `does not divide the ${layers} layers over pp ${pp} (${layers / pp} a stage)`, "give a number of layers that divides each stage's")
  return layers / pp / n
}

/**
 * Megatron-LM's deprecated --moe-router-topk-limited-devices N: device-limited routing, group-limited
 * routing with a group an expert-parallel rank's experts: --num-groups EP --group-topk N (EP from
 * the command line, Megatron-LM's default 1).
 */
const limitedDevices = (argv: ReadonlyArray<string>, text: string): ReadonlyArray<string> | ConfigError.ConfigError => {
  const field = "--moe-router-topk-limited-devices"
  const problem = Flags.integerProblem(text, {}, `write ${field}`)
  if (problem !== undefined) return ConfigError.make(field, text, problem.reason, problem.fix)
  if (given(argv, ["moe-router-num-groups", "num-groups", "moe-router-group-topk", "group-topk"]) !== undefined)
    return ConfigError.make(
      field,
      text,
      "and --moe-router-num-groups / --moe-router-group-topk both set the groups",
      "give --moe-router-num-groups and --moe-router-group-topk alone",
    )
  return [`--num-groups=${given(argv, ["expert-model-parallel-size", "ep"]) ?? 1}`, `--group-topk=${text}`]
}

/**
 * Megatron-LM's --data-path, --train-data-path or --valid-data-path (`name`) list as pleat's flag:
 * one PREFIX (or WEIGHT PREFIX) as --data / --eval-data PREFIX.bin with its .idx's dtype (`prefix`
 * given), a --train-data-path blend as --data-blend (MegatronRewrites.blendOf); other blends refused.
 * @category constructors
 */
export const dataPathOf = (
  name: string,
  list: ReadonlyArray<string>,
): { readonly flag: string; readonly dtypes: ReadonlyArray<string>; readonly prefix?: string | undefined } | ConfigError.ConfigError => {
  const prefix = list.length === 1 ? list[0] : list.length === 2 && Number.isFinite(Number(list[0])) ? list[1] : undefined
  if (prefix !== undefined) {
    const dtype = MegatronIndex.dtypeOf(prefix, `--${name}`)
    return ConfigError.isConfigError(dtype) ? dtype : { flag: `--${name === "valid-data-path" ? "eval-data" : "data"}=${prefix}.bin`, dtypes: [dtype], prefix }
  }
  if (name !== "train-data-path")
    return ConfigError.make(
      `--${name}`,
      list.join(" "),
      "blends several datasets, which pleat reads only as training data read whole",
      "give the blend as --train-data-path W PREFIX W PREFIX ... (and one --valid-data-path PREFIX), or one PREFIX",
    )
  const blend = blendOf(`--${name}`, list)
  return ConfigError.isConfigError(blend) ? blend : { flag: `--data-blend=${blend.text}`, dtypes: blend.dtypes }
}

/**
 * A Megatron-LM blend (`W PREFIX W PREFIX ...`) as --data-blend's value (each PREFIX.bin) and the
 * dtypes of its .idx files; or the problem, naming `field`.
 * @category constructors
 */
const blendOf = (field: string, list: ReadonlyArray<string>): { readonly text: string; readonly dtypes: ReadonlyArray<string> } | ConfigError.ConfigError => {
  const blend = Blend.pairsOf(list)
  if (blend === undefined) return ConfigError.make(field, list.join(" "), "is not pairs of a positive weight and a dataset prefix", `write ${field} 0.3 PREFIX_A 0.7 PREFIX_B`)
  const pairs: Array<string> = []
  const dtypes: Array<string> = []
  for (const [k, prefix] of blend.names.entries()) {
    const dtype = MegatronIndex.dtypeOf(prefix, field)
    if (ConfigError.isConfigError(dtype)) return dtype
    pairs.push(`${list[2 * k]} ${prefix}.bin`)
    dtypes.push(dtype)
  }
  if (new Set(dtypes).size > 1)
    return ConfigError.make(
      field,
      list.join(" "),
      `holds datasets of different dtypes (${dtypes.join(", ")}), which pleat reads alike`,
      "write the blend's datasets with one dtype",
    )
  return { text: pairs.join(" "), dtypes }
}

/**
 * Megatron-LM settings whose pleat flags follow from other flags of the command line: each
 * gives the flags, or the problem.
 * @category configuration
 */
export const derived: Readonly<Record<string, (argv: ReadonlyArray<string>, text: string) => ReadonlyArray<string> | ConfigError.ConfigError>> = {
  "num-layers-per-virtual-pipeline-stage": (argv, text) => {
    const vpp = virtualStages(argv, text)
    return ConfigError.isConfigError(vpp) ? vpp : vpp > 1 ? [`--vpp=${vpp}`] : []
  },
  "moe-router-topk-limited-devices": limitedDevices,
}

/**
 * Megatron-LM's load-balancing types and coefficients as pleat's flags (--aux-loss; --sinkhorn
 * and --quantile-balancing for the types sinkhorn and quantile_balancing, which Megatron-LM
 * takes alone and with a coefficient of 0), or undefined when neither is given.
 */
export const balancingFlags = (
  types: ReadonlyArray<string> | undefined,
  coeffs: ReadonlyArray<string> | undefined,
): ReadonlyArray<string> | ConfigError.ConfigError | undefined => {
  if (types === undefined && coeffs === undefined) return undefined
  const t = types ?? ["aux_loss"]
  const c = coeffs ?? ["0"]
  const field = types === undefined ? "--moe-aux-loss-coeff" : "--moe-router-load-balancing-type"
  if (t.length === 1 && t[0] === "none") return ["--aux-loss=none"]
  for (const [type, name, flag] of routerTypes) {
    if (!t.includes(type)) continue
    if (t.length > 1)
      return ConfigError.make(field, t.join(" "), `lists ${type} with other types, where ${name} is a router of its own`, `give ${type} alone, or the loss types alone`)
    if (c.length !== 1 || Number(c[0]) !== 0)
      return ConfigError.make("--moe-aux-loss-coeff", c.join(" "), `is not 0, and ${name} takes no aux loss (Megatron-LM refuses it too)`, "drop --moe-aux-loss-coeff, or give 0")
    return [flag, "--aux-loss=none"]
  }
  const unknown = t.find((x) => !Object.hasOwn(balancingTypes, x))
  if (unknown !== undefined)
    return ConfigError.make(
      "--moe-router-load-balancing-type",
      unknown,
      "is not a load-balancing loss pleat has",
      "use aux_loss, seq_aux_loss, global_aux_loss, sinkhorn, quantile_balancing or none, or --moe-router-enable-expert-bias for aux-loss-free balancing",
    )
  if (t.length !== c.length)
    return ConfigError.make(
      field,
      `${t.join(" ")} / ${c.join(" ")}`,
      `gives ${t.length} load-balancing types and ${c.length} coefficients`,
      "give one --moe-aux-loss-coeff a type, in the same order",
    )
  return [`--aux-loss=${t.map((x, k) => `${balancingTypes[x]}:${c[k]}`).join(",")}`]
}
