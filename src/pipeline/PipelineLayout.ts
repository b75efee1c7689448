/**
 * PipelineLayout: Megatron-Core's custom pipeline layout (--pipeline-model-parallel-layout), the
 * layers of every virtual pipeline stage written out, read into the layer count of each global
 * stage (Partition's `stageLayers`).
 *
 * The text: stages separated by `|`, global stage order (stage s is pp rank s mod pp, chunk
 * floor(s / pp)), so pp x vpp stages in all and vpp = stages / pp. In a stage, `E` is the
 * embedding, `t` a transformer layer, `m` a multi-token prediction layer, `L` the output layer and
 * loss; `x*N` repeats x N times and `(...)*N` what the parentheses hold; commas are cosmetic.
 * "Et*3|(tt|)*29,m|L" reads as [Ettt], 29 x [tt], [m], [L].
 *
 * Megatron-Core's rules: the embedding first and the loss last, once each; the model's layers and
 * MTP layers counted exactly; MTP layers after every transformer layer. pleat's stages also keep
 * the embedding in the first stage, the loss in the last, and the MTP layers with the loss (pleat
 * has no standalone MTP stage): a layout that puts them elsewhere is refused, naming where. A stage
 * may hold no layer at all (Megatron's "(empty stage)"): its rank passes the activations on.
 */
import * as Result from "effect/Result"
import * as ConfigError from "../errors/ConfigError.js"

/**
 * What a layout holds: the transformer layers of each global stage, and pp x vpp's vpp.
 * @category models
 */
export interface Layout {
  readonly stageLayers: ReadonlyArray<number>
  readonly vpp: number
}

/** The field a refusal names (pleat's flag; Megatron-LM's --pipeline-model-parallel-layout reads as it). */
const field = "pipeline-layout"

/** The layout with its repetitions written out and its commas dropped, Megatron's way: parentheses first, then single characters. */
const unrolled = (text: string): string =>
  text
    .replaceAll(",", "")
    .replace(/\(([^)]+)\)\*(\d+)/g, (_, body: string, n: string) => body.repeat(Number(n)))
    .replace(/(.)\*(\d+)/g, (_, one: string, n: string) => one.repeat(Number(n)))

/**
 * The layout `text` for `pp` ranks and a model of `layers` transformer layers and `mtpLayers`
 * multi-token prediction layers; a ConfigError on --pipeline-layout naming what does not fit.
 * @category constructors
 */
export const parse = (text: string, pp: number, layers: number, mtpLayers: number): Result.Result<Layout, ConfigError.ConfigError> => {
  const fail = (reason: string, fix: string) => Result.fail(ConfigError.make(field, text, reason, fix))
  const stages = unrolled(text).split("|")
  const bad = stages.join("").match(/[^ELtm]/)
  if (bad !== null)
    return fail(
      `holds ${JSON.stringify(bad[0])}, which is no layer`,
      "write stages of E (embedding), t (transformer layer), m (MTP layer) and L (loss), separated by |, with x*N and (...)*N for repeats",
    )
  if (pp === 1 && stages.length > 1)
    return fail(
      `has ${stages.length} stages, where pp is 1 (virtual stages need pipeline parallelism)`,
      `set --pp to ${stages.length} or a divisor of it above 1, or write one stage`,
    )
  if (stages.length % pp !== 0) return fail(`has ${stages.length} stages, not a multiple of pp = ${pp}`, `write pp x vpp stages: ${pp}, ${2 * pp}, ${3 * pp}, ...`)
  const flat = stages.join("")
  const count = (c: string) => flat.split(c).length - 1
  if (count("E") !== 1 || flat[0] !== "E") return fail("does not start with the embedding, once (E)", "put one E at the start of the first stage")
  if (count("L") !== 1 || flat[flat.length - 1] !== "L") return fail("does not end with the loss, once (L)", "put one L at the end of the last stage")
  if (count("t") !== layers) return fail(`holds ${count("t")} transformer layers (t), where the model has ${layers}`, `write ${layers} t's across the stages`)
  if (count("m") !== mtpLayers) return fail(`holds ${count("m")} MTP layers (m), where the model has ${mtpLayers} (--mtp-num-layers)`, `write ${mtpLayers} m's, in the last stage`)
  if (mtpLayers > 0 && flat.lastIndexOf("t") > flat.indexOf("m")) return fail("puts a transformer layer after an MTP layer", "put every m after the last t")
  const last = stages.length - 1
  const where = (c: string) => stages.findIndex((s) => s.includes(c))
  if (where("E") !== 0) return fail(`puts the embedding in stage ${where("E")}, after empty stages`, "put E in the first stage: pleat's first stage holds the embedding")
  if (where("L") !== last)
    return fail(`puts the loss in stage ${where("L")} of ${stages.length}`, "put L in the last stage: pleat's last stage holds the output layer and the loss")
  if (mtpLayers > 0 && (stages[last] as string).split("m").length - 1 !== mtpLayers)
    return fail(`puts MTP layers in stage ${where("m")}, before the last (${last})`, "put every m in the last stage, with L: pleat computes the MTP layers beside the loss")
  return Result.succeed({ stageLayers: stages.map((s) => s.split("t").length - 1), vpp: stages.length / pp })
}
