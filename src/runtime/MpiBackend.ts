/**
 * MpiBackend: the Layer whose ranks are the processes of an MPI launch (mpirun, srun), one rank
 * per process, with rank 0 as the driver (MpiJob). Its jobs run on this process's MPI session,
 * started on first use (so `--backend mpi` without a launcher is a world of one process); a job
 * of a world other than the number of processes is refused by the commands before it gets
 * here (MpiProcess.checkWorld).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as MpiSession from "../comm/mpi/MpiSession.js"
import { Backend } from "./Backend.js"
import * as MpiJob from "./MpiJob.js"

/**
 * The MPI backend as a Layer.
 * @category layers
 */
export const layer = (): Layer.Layer<Backend> =>
  Layer.succeed(Backend, {
    name: "mpi",
    run: (spec) => Effect.flatMap(Effect.sync(MpiSession.start), (session) => MpiJob.drive(session, spec)),
  })
