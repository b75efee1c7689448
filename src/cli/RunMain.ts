/**
 * RunMain: runs a command as the process's main fiber, so that SIGINT and SIGTERM interrupt it.
 *
 * A signal interrupts the fiber: every finalizer runs (a job closes its backend, so every rank
 * stops and every worker ends; a checkpoint save either finishes its atomic rename or leaves
 * the previous checkpoint). Then one line on stderr says what was interrupted
 * (`pleat train: interrupted by SIGINT at step 3 of 100; no checkpoint written`) and the
 * status is 128 + the signal (130, 143). Should the finalizers not finish within `graceMs`, or
 * should a second signal come, the line is printed and the status returned without waiting:
 * the caller exits the process, which ends any thread left. JavaScript runs only between
 * native calls, so while the run lasts the native SignalNet stands behind this: should a kernel
 * hold the main thread past the grace after a signal, it prints the line and ends the process.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Exit from "effect/Exit"
import * as SignalNet from "../native/SignalNet.js"
import * as Activity from "./Activity.js"
import * as ExitCode from "./ExitCode.js"
import type { Io } from "./Io.js"

/**
 * How a run ended: its status, and the signal that interrupted it, if one did.
 * @category models
 */
export interface Ended {
  readonly code: number
  readonly signal?: NodeJS.Signals
}

/**
 * Options of a main run.
 * @category models
 */
export interface RunMainOptions {
  /** How long finalizers get after a signal before the run is given up, in ms (default 3000). */
  readonly graceMs?: number
  /** The signals that interrupt (default SIGINT and SIGTERM). */
  readonly signals?: ReadonlyArray<NodeJS.Signals>
}

/**
 * Runs `program` (which reports its own errors and returns a status) as the main fiber of
 * `pleat <command>`.
 * @category constructors
 */
export const run = (command: string, program: Effect.Effect<number, never, Activity.Activity>, io: Io, options: RunMainOptions = {}): Promise<Ended> =>
  new Promise<Ended>((resolve) => {
    const signals = options.signals ?? ["SIGINT", "SIGTERM"]
    const graceMs = options.graceMs ?? 3000
    let net: SignalNet.Armed | undefined
    const cell = Activity.make()
    const activity: Activity.ActivityShape = {
      set: (text) => {
        cell.set(text)
        net?.describe(text)
      },
      describe: cell.describe,
    }
    let received: NodeJS.Signals | undefined
    let ended = false
    const end = (outcome: Ended, note = "") => {
      if (ended) return
      ended = true
      // Before Node's listeners go: the net gives each signal back to Node's handler.
      net?.disarm()
      for (const s of signals) process.off(s, onSignal)
      if (outcome.signal !== undefined) {
        const what = activity.describe()
        io.stderr(`pleat ${command}: interrupted by ${outcome.signal}${what === "" ? "" : ` ${what}`}${note}\n`)
      }
      resolve(outcome)
    }
    function onSignal(signal: NodeJS.Signals): void {
      if (received !== undefined) return end({ code: ExitCode.interrupted(received), signal: received }, `; stopped at once by a second ${signal}`)
      received = signal
      net?.seen()
      setTimeout(() => end({ code: ExitCode.interrupted(signal), signal }, `; did not stop within ${graceMs / 1000} s, stopped anyway`), graceMs).unref()
      Effect.runFork(Fiber.interrupt(fiber))
    }
    for (const s of signals) process.on(s, onSignal)
    // Should a native call hold the main thread when a signal comes, the net ends the process.
    net = SignalNet.arm(`pleat ${command}: interrupted by `, graceMs, signals)
    const fiber = Effect.runFork(Effect.provideService(program, Activity.Activity, activity))
    fiber.addObserver((exit) => {
      if (received !== undefined) return end({ code: ExitCode.interrupted(received), signal: received })
      // The program reports its own errors; anything else reaching here is a defect of ours.
      if (Exit.isSuccess(exit)) return end({ code: exit.value })
      io.stderr(`pleat ${command}: internal error (please report): ${String(exit.cause)}\n`)
      end({ code: ExitCode.failure })
    })
  })
