/**
 * MegatronPipelineSplit: Megatron-LM's --account-for-embedding-in-pipeline-split and
 * --account-for-loss-in-pipeline-split as pleat's --pipeline-layout.
 *
 * Megatron-Core's rule (get_num_layers_to_build): the embedding and the loss, where accounted
 * for, count as one layer each in the split, so the pp x vpp stages share layers + 1 (+ 1) equally
 * (that must divide, or Megatron-LM refuses the run); the first stage then builds one layer
 * fewer for the embedding, the last one fewer for the loss. MTP layers are not counted: they go
 * with the loss, as pleat keeps them. Megatron-LM refuses them beside the first and last stages'
 * own counts (--decoder-first/last-pipeline-num-layers) and a layout; so does pleat.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as MegatronRewrites from "./MegatronRewrites.js"

/**
 * Megatron-LM's switches this module reads.
 * @category configuration
 */
export const switches: ReadonlyArray<string> = ["account-for-embedding-in-pipeline-split", "account-for-loss-in-pipeline-split"]

/**
 * The --pipeline-layout flag of a command whose accounted-for ends are `accounted` (Megatron's
 * switch names), from its --num-layers, pipeline size and virtual stages; or the problem.
 * @category constructors
 */
export const layoutFlag = (argv: ReadonlyArray<string>, accounted: ReadonlySet<string>): string | ConfigError.ConfigError => {
  const embedding = accounted.has("account-for-embedding-in-pipeline-split") ? 1 : 0
  const loss = accounted.has("account-for-loss-in-pipeline-split") ? 1 : 0
  const field = `--${embedding === 1 ? "account-for-embedding-in-pipeline-split" : "account-for-loss-in-pipeline-split"}`
  const given = (names: ReadonlyArray<string>) => MegatronRewrites.given(argv, names)
  const ends = given([
    "decoder-first-pipeline-num-layers",
    "first-stage-layers",
    "decoder-last-pipeline-num-layers",
    "last-stage-layers",
    "pipeline-model-parallel-layout",
    "pipeline-layout",
  ])
  if (ends !== undefined)
    return ConfigError.make(field, true, "and the first and last stages' own counts (or a layout) both split the layers", "give one: the accounted-for ends, or the stages' counts")
  const layers = Number(given(["num-layers", "layers"]))
  const pp = Number(given(["pipeline-model-parallel-size", "pp"]) ?? 1)
  const perStage = given(["num-layers-per-virtual-pipeline-stage"])
  const vpp = Number(given(["num-virtual-stages-per-pipeline-rank", "vpp"]) ?? (perStage === undefined ? 1 : layers / pp / Number(perStage)))
  const mtp = Number(given(["mtp-num-layers"]) ?? 0)
  if (![layers, pp, vpp, mtp].every((n) => Number.isSafeInteger(n) && n >= 0) || pp < 1 || vpp < 1)
    return ConfigError.make(
      field,
      true,
      "needs --num-layers and the pipeline's size on the command line",
      "give --num-layers and --pipeline-model-parallel-size (and the virtual stages)",
    )
  const stages = pp * vpp
  const counted = layers + embedding + loss
  if (counted % stages !== 0)
    return ConfigError.make(
      field,
      true,
      `makes ${counted} layers to split (${layers} + the accounted-for ends), which the ${stages} pipeline stages (pp ${pp} x vpp ${vpp}) cannot share equally`,
      `choose --num-layers so that it plus ${embedding + loss} is a multiple of ${stages}`,
    )
  const share = counted / stages
  const text = Array.from({ length: stages }, (_, s) => {
    const count = share - (s === 0 ? embedding : 0) - (s === stages - 1 ? loss : 0)
    return `${s === 0 ? "E" : ""}${"t".repeat(count)}${s === stages - 1 ? `${"m".repeat(mtp)}L` : ""}`
  }).join("|")
  return `--pipeline-layout=${text}`
}
