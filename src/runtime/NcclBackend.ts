/**
 * NcclBackend: the Layer whose ranks are the processes of an MPI launch, one GPU each, with
 * the collectives' data on NCCL (comm/nccl/NcclEngine.ts) and everything else as on the MPI
 * backend: the same jobs (MpiJob), the signatures agreed over MPI first, the watchdog on MPI;
 * p2p between device-resident tensors on NCCL links announced over MPI, the rest MPI frames. NCCL is opened when the first job starts (NcclOpen); a process where it
 * cannot be fails the job with the reason.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as MpiSession from "../comm/mpi/MpiSession.js"
import { Backend } from "./Backend.js"
import * as MpiJob from "./MpiJob.js"

/**
 * The NCCL backend as a Layer.
 * @category layers
 */
export const layer = (): Layer.Layer<Backend> =>
  Layer.succeed(Backend, {
    name: "nccl",
    run: (spec) => Effect.flatMap(Effect.sync(MpiSession.start), (session) => MpiJob.drive(session, spec, "nccl")),
  })
