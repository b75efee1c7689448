/**
 * SignalNet: the process's last word on SIGINT and SIGTERM when its main thread cannot answer
 * (cuda/src/signal_net.h).
 *
 * `pleat` ends a job on these signals in JavaScript (cli/RunMain.ts), which runs only between
 * native calls: a main thread inside one long kernel (attention over a million positions runs
 * for minutes) never saw the signal, and the process went on until SIGKILL. While the net is
 * armed, a native handler chained in front of Node's notes each signal, and a thread of the addon
 * ends the process (one line on stderr, status 128 + the signal) when JavaScript has not:
 * at the grace after a first signal it never acknowledged (`seen`), a second after the grace
 * from an acknowledgement, 0.3 s after a further signal. `disarm` stands it down before
 * JavaScript ends the run itself. Without the addon (or with a build older than it) nothing is
 * armed and the JavaScript path is all there is.
 */
import os from "node:os"
import { addonIfBuilt } from "./CpuAddon.js"

/**
 * An armed net: calls that tell it the main thread is alive and what the command is doing.
 * @category models
 */
export interface Armed {
  /** JavaScript's handler ran for the first signal. */
  readonly seen: () => void
  /** What the command is doing now: the words after the signal's name in the line. */
  readonly describe: (text: string) => void
  readonly disarm: () => void
}

/**
 * Arms the net for `signals` (call after process.on has registered JavaScript's handlers: the net
 * chains in front of them), the line starting with `prefix` (`pleat train: interrupted by `);
 * undefined when the addon cannot arm it.
 * @category constructors
 */
export const arm = (prefix: string, graceMs: number, signals: ReadonlyArray<NodeJS.Signals>): Armed | undefined => {
  const addon = addonIfBuilt()
  const { signalNetArm, signalNetSeen, signalNetDescribe, signalNetDisarm } = addon ?? {}
  if (addon === undefined || signalNetArm === undefined || signalNetSeen === undefined || signalNetDescribe === undefined || signalNetDisarm === undefined) {
    return undefined
  }
  const numbers = signals.map((s) => os.constants.signals[s])
  // Armed for none: Node listens to none of them (the default action stands).
  if (signalNetArm.call(addon, prefix, Math.max(0, Math.round(graceMs)), numbers).length === 0) return undefined
  return {
    seen: () => signalNetSeen.call(addon),
    describe: (text) => signalNetDescribe.call(addon, text),
    disarm: () => signalNetDisarm.call(addon),
  }
}

/**
 * Ends the process with `code` after `ms` unless it has ended by then; false without the addon.
 * For an exit that may wait on a thread held by native code: Node's process.exit joins its worker
 * threads, and a worker inside a long kernel cannot stop before the kernel returns.
 * @category constructors
 */
export const exitWithin = (code: number, ms: number): boolean => {
  const addon = addonIfBuilt()
  return addon?.exitWithin === undefined ? false : addon.exitWithin(code, Math.max(0, Math.round(ms)))
}
