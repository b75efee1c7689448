/**
 * Verdict: whether a complete set of contributions to one collective may proceed, judged from
 * their signatures alone: the first member whose own arguments cannot work (BadInput for it,
 * Mismatch for the others), members that issued different ops, dtypes or sizes (Mismatch
 * naming who issued what), or a receive buffer that cannot hold its member's result
 * (BadInput). The rendezvous applies the same rules one arrival at a time; a transport whose
 * members all learn every signature at once (MPI: an allgather of them) applies them here, so
 * every member reaches the same verdict and the same words.
 */
import * as Collective from "./Collective.js"
import * as CommError from "./CommError.js"
import * as Group from "./Group.js"

/**
 * Who issued what, for a Mismatch (one clause per distinct signature), or undefined when all
 * the given signatures agree.
 * @category mapping
 */
export const mismatch = (parts: ReadonlyArray<Collective.Signature>): string | undefined => {
  const signatures = new Map<string, Array<number>>()
  for (const p of parts) {
    const sig = Collective.signature(p)
    signatures.set(sig, [...(signatures.get(sig) ?? []), p.rank])
  }
  if (signatures.size <= 1) return undefined
  return [...signatures.entries()].map(([sig, ranks]) => `rank${ranks.length > 1 ? "s" : ""} ${ranks.join(",")} issued ${sig}`).join("; ")
}

/**
 * The error each member gets when the collective cannot proceed, or undefined when it can.
 * `parts` are every member's signature in group-local order; `buffers` their receive buffers.
 * @category constructors
 */
export const judge = (
  group: Group.Group,
  seq: number,
  parts: ReadonlyArray<Collective.Signature>,
  buffers: ReadonlyArray<{ readonly length: number; readonly dtype: Collective.Signature["dtype"] } | undefined>,
): ((rank: number) => CommError.CommError) | undefined => {
  const name = Group.format(group)
  const op = parts[0]?.op ?? "collective"
  for (const part of parts) {
    const own = Collective.checkOwn(part, group.ranks.length)
    if (own !== undefined) {
      return (r) =>
        CommError.make({ reason: r === part.rank ? "BadInput" : "Mismatch", group: name, op: part.op, seq, rank: r, ranks: [part.rank], detail: `rank ${part.rank}: ${own}` })
    }
  }
  const first = parts[0]
  if (first !== undefined && !parts.every((p) => Collective.agrees(first, p))) {
    const detail = mismatch(parts)
    if (detail !== undefined) {
      const ranks = parts.map((p) => p.rank)
      return (r) => CommError.make({ reason: "Mismatch", group: name, op, seq, rank: r, ranks, detail })
    }
  }
  for (let j = 0; j < parts.length; j++) {
    const problem = Collective.receiveBufferProblem(parts, j, buffers[j])
    if (problem !== undefined) return (r) => CommError.make({ reason: "BadInput", group: name, op, seq, rank: r, ranks: [], detail: String(new RangeError(problem)) })
  }
  return undefined
}
