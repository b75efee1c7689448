/**
 * Alone: the collectives a group of one member answers with its own contribution, as it is:
 * Differentiable's shortcut (no communicator, no copy, on the host and on a device alike) and
 * the MPI and NCCL transports' copy on the device, so a device-resident tensor stays where it is.
 */
import type * as Collective from "./Collective.js"

/**
 * Whether a collective of one member gives back its contribution as it is (sums and gathers of
 * one, a broadcast, an exchange or scatter that keeps every row): no gathered send rows, no sum
 * onto tokens, one chunk, and any splits or counts naming all its rows.
 * @category guards
 */
export const keepsItsRows = (r: {
  readonly op: Collective.Op
  readonly shape: ReadonlyArray<number>
  readonly sendSplits?: ReadonlyArray<number> | undefined
  readonly recvSplits?: ReadonlyArray<number> | undefined
  readonly counts?: ReadonlyArray<number> | undefined
  readonly chunks?: number | undefined
  readonly combine?: unknown
  readonly sendRows?: unknown
}): boolean => {
  if (r.op === "barrier" || r.combine !== undefined || r.sendRows !== undefined || (r.chunks ?? 1) !== 1) return false
  const rows = r.shape[0] ?? 1
  const keeps = (splits: ReadonlyArray<number> | undefined) => splits === undefined || (splits.length === 1 && splits[0] === rows)
  return keeps(r.sendSplits) && keeps(r.recvSplits) && keeps(r.counts)
}
