/**
 * DistributedDebug: PLEAT_DISTRIBUTED_DEBUG, how much of each collective the NCCL backend checks
 * on the host before NCCL runs it (comm/mpi/HostChecks.ts), named after PyTorch's
 * TORCH_DISTRIBUTED_DEBUG:
 *
 *   unset or OFF   the collectives whose sizes the members learn from each other (all-to-all,
 *                  gather-v, broadcast) are exchanged and judged over MPI first; the fixed-size
 *                  ones (the gradients' sums and the distributed optimizer's reduce-scatters and
 *                  all-gathers) go straight to NCCL
 *   DETAIL         every collective's op, dtype and sizes are exchanged and judged first, so
 *                  any mismatch fails on every member at once naming group, op and ranks
 *
 * Rank 0 reads it and sends its choice with each job, so every rank of a launch checks the same
 * way whatever environment mpirun forwarded. The other backends always check every collective.
 */
import type * as HostChecks from "../comm/mpi/HostChecks.js"
import * as ConfigError from "../errors/ConfigError.js"

const variable = "PLEAT_DISTRIBUTED_DEBUG"

/**
 * The NCCL backend's host checks under `env`; a value other than OFF or DETAIL (any case) is a
 * ConfigError naming the variable.
 * @category constructors
 */
export const hostChecks = (env: NodeJS.ProcessEnv = process.env): HostChecks.HostChecks => {
  const raw = env[variable]
  const value = (raw ?? "").trim().toUpperCase()
  if (value === "" || value === "OFF") return "variable"
  if (value === "DETAIL") return "all"
  throw ConfigError.make(variable, raw, "is not OFF or DETAIL", `unset it, or set DETAIL to check every collective's op and sizes on the host before NCCL runs it`)
}
