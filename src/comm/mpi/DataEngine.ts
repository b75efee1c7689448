/**
 * DataEngine: what moves the data of a job's agreed collectives on the MPI transport when MPI's
 * own ops do not (the NCCL backend's NcclEngine): MpiTransport exchanges and judges every
 * collective's signatures first, then hands the engine each group's agreed collectives in issue
 * order.
 */
import type * as Collective from "../Collective.js"
import type { Request } from "../Communicator.js"
import type * as Group from "../Group.js"
import type * as Tensor from "../../tensor/Tensor.js"
import type * as Frame from "./Frame.js"

/**
 * An agreed collective's outcome from a DataEngine: the member's result, or why it failed.
 * @category models
 */
export type EngineOutcome = { readonly ok: true; readonly output: Collective.Output<Collective.Values> } | { readonly ok: false; readonly error: string }

/**
 * An engine's point-to-point carrier (comm/mpi/P2p.ts): the values of the messages it can reach
 * go through it, announced by an MPI frame on the message's place in the sender's order.
 * @category models
 */
export interface P2pCarrier {
  /**
   * Starts sending `t` to world rank `to` when the carrier can reach its values (else returns
   * undefined: an MPI frame carries them); returns what the announcement tells the receiver.
   * `failed` hears why, if the send fails later.
   */
  readonly send: (to: number, t: Tensor.Tensor, failed: (error: string) => void) => Frame.EngineHead | undefined
  /** Receives the values an announcement from world rank `from` stands for, in the order of its announcements. */
  readonly receive: (from: number, head: Frame.TensorHead) => Promise<Tensor.Tensor>
}

/**
 * What moves the data of a job's agreed collectives when MPI's own ops do not.
 * @category models
 */
export interface DataEngine {
  /** The backend's name, as the Communicator reports it. */
  readonly backend: string
  /**
   * Starts the data op of an agreed collective: called in each group's issue order, before the
   * group's next collective starts on `mpiComm` (the group's MPI communicator, for the engine's
   * own set-up messages), with every member's signature and this member's group-local index.
   */
  readonly start: (group: Group.Group, mpiComm: number, request: Request, parts: ReadonlyArray<Collective.Signature>, local: number, done: (outcome: EngineOutcome) => void) => void
  /** What the engine knows of a group whose collective timed out (NCCL's asynchronous error), if anything. */
  readonly diagnose: (group: Group.Group) => string | undefined
  /** Point-to-point messages the engine carries (undefined: all of them go as MPI frames). */
  readonly p2p?: P2pCarrier
  /** The job ended: `clean` when nothing failed or is left running (then resources are freed, else aborted). */
  readonly close: (clean: boolean) => void
}

/**
 * Starts a collective on `engine`; its outcome goes to `deliver` at once, or, when `held`, not
 * before the returned release is called (the members' verdict, for a collective handed over
 * before its signatures' exchange completed: HostChecks "alongside").
 * @category constructors
 */
export const startHeld = (
  engine: DataEngine,
  mpiComm: number,
  task: { readonly group: Group.Group; readonly request: Request },
  parts: ReadonlyArray<Collective.Signature>,
  local: number,
  held: boolean,
  deliver: (outcome: EngineOutcome) => void,
): (() => void) => {
  let waiting: EngineOutcome | undefined
  let open = !held
  engine.start(task.group, mpiComm, task.request, parts, local, (outcome) => (open ? deliver(outcome) : void (waiting = outcome)))
  return () => {
    open = true
    if (waiting !== undefined) deliver(waiting)
  }
}
