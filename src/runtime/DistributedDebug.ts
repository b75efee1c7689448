/**
 * DistributedDebug: PLEAT_DISTRIBUTED_DEBUG, when the NCCL backend judges each collective's
 * signatures on the host relative to NCCL's run of it (comm/mpi/HostChecks.ts), named after
 * PyTorch's TORCH_DISTRIBUTED_DEBUG. Every collective is judged either way (a mismatch fails on
 * every member naming group, op and ranks):
 *
 *   unset or OFF   the fixed-size collectives (the gradients' sums, the distributed optimizer's
 *                  reduce-scatters and all-gathers) go to NCCL as soon as their check is issued,
 *                  their results held until it agrees ("alongside")
 *   DETAIL         every collective is judged before NCCL is given it ("first")
 *
 * Rank 0 reads it and sends its choice with each job, so every rank of a launch checks the same
 * way whatever environment mpirun forwarded. The other backends have no engine to overlap.
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
  if (value === "" || value === "OFF") return "alongside"
  if (value === "DETAIL") return "first"
  throw ConfigError.make(variable, raw, "is not OFF or DETAIL", `unset it, or set DETAIL to judge every collective on the host before NCCL runs it`)
}
