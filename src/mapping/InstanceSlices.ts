/**
 * InstanceSlices: the distributed optimizer's instances (hybrid sharding, Megatron-Core's
 * --num-distributed-optimizer-instances; semantics.md 1.4): a gradient group (dp x cp for the
 * dense parameters, edp for the experts) split into N instances of consecutive members, the
 * state sharded within an instance and each part summed across the instances by the members at
 * the same place in each. The one rule training's groups (DistributedOptimizer) and the planner's
 * placement (Placement) are cut by.
 */

/**
 * The member at index `at` of `members`' instance (its consecutive slice) and the members at its
 * place in every instance; `instances` divides the members.
 * @category mapping
 */
export const of = (members: ReadonlyArray<number>, instances: number, at: number): { readonly intra: Array<number>; readonly inter: Array<number> } => {
  const size = members.length / instances
  const instance = Math.floor(at / size)
  const place = at % size
  return {
    intra: members.slice(instance * size, (instance + 1) * size),
    inter: Array.from({ length: instances }, (_, i) => members[i * size + place] as number),
  }
}

/**
 * Whether `instances` divides both gradient groups of a mapping: dp x cp and edp.
 * @category guards
 */
export const divide = (sizes: { readonly dp: number; readonly cp: number; readonly edp: number }, instances: number): boolean =>
  (sizes.dp * sizes.cp) % instances === 0 && sizes.edp % instances === 0
