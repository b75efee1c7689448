/**
 * PipelineText: the pipeline axis as `pleat train` and `pleat verify` print it: `pp 2`, with the
 * interleaving (`(vpp 2)`) and, where the first or last rank has its own layer count
 * (--first-stage-layers, --last-stage-layers) or a layout gives every stage its own
 * (--pipeline-layout), the layers each pp rank holds.
 */
import type * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as Partition from "../pipeline/Partition.js"

/**
 * "pp P", then " (vpp V)" and " with layers a/b/... by pp rank" where they apply.
 * @category formatting
 */
export const ppText = (parallel: ParallelConfig.ParallelConfig, layers: number): string => {
  const { pp } = parallel.sizes
  const vpp = parallel.vpp === undefined ? "" : ` (vpp ${parallel.vpp})`
  if (parallel.firstStageLayers === undefined && parallel.lastStageLayers === undefined && parallel.stageLayers === undefined) return `pp ${pp}${vpp}`
  const part = Partition.make(Partition.inputOf(layers, parallel))
  const held = Array.from({ length: pp }, (_, p) => Partition.layersOnRank(part, p))
  return `pp ${pp}${vpp} with layers ${held.join("/")} by pp rank`
}
