/**
 * NcclApi: the NCCL entry points pleat's NCCL backend uses (declared with their signatures in
 * cuda/src/nccl/nccl_api.h, since the headers are not installed): communicator setup (a unique
 * id sent over MPI, one communicator per group by ncclCommInitRank: NcclEngine.ts says why not
 * ncclCommSplit), the collectives and grouped point-to-point calls of NcclPlan (NCCL 2.7 or
 * later), and error handling. `pleat doctor` reports which of them a found libnccl lacks.
 */

/**
 * The entry points, in the order of their first use.
 * @category constants
 */
export const ENTRY_POINTS: ReadonlyArray<string> = [
  "ncclGetVersion",
  "ncclGetUniqueId",
  "ncclCommInitRank",
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
