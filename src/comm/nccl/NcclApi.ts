/**
 * NcclApi: the NCCL entry points pleat's NCCL backend uses (issue 15), declared by name since
 * the headers are not installed: communicator setup (a unique id exchanged over MPI, one
 * communicator per group by ncclCommSplit, NCCL 2.18 or later), the collectives and grouped
 * point-to-point calls of NcclPlan, and error handling. `pleat doctor` reports which of them a
 * found libnccl lacks.
 */

/**
 * The entry points, in the order of their first use.
 * @category constants
 */
export const ENTRY_POINTS: ReadonlyArray<string> = [
  "ncclGetVersion",
  "ncclGetUniqueId",
  "ncclCommInitRank",
  "ncclCommSplit",
  "ncclGroupStart",
  "ncclGroupEnd",
  "ncclAllReduce",
  "ncclAllGather",
  "ncclReduceScatter",
  "ncclReduce",
  "ncclBroadcast",
  "ncclSend",
  "ncclRecv",
  "ncclCommGetAsyncError",
  "ncclGetErrorString",
  "ncclCommAbort",
  "ncclCommDestroy",
]
