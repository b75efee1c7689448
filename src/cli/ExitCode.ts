/**
 * ExitCode: the exit statuses of `pleat`.
 *
 * 0 success; 1 an internal failure (a bug: reported with its cause); 2 input that cannot work
 * (a flag, a configuration, a case file or a checkpoint), reported as one line naming the field
 * and the fix; 3 a run that trained but could not save a checkpoint where --save said (one line
 * says where its state went instead: a fallback directory, or the last intact checkpoint);
 * 128 + the signal's number when a signal interrupted the command (130 for SIGINT,
 * 143 for SIGTERM), as shells report it.
 */
import { constants } from "node:os"

/** @category models */
export const ok = 0
/** @category models */
export const failure = 1
/** @category models */
export const badInput = 2
/** @category models */
export const saveFailed = 3

/**
 * The status of a command interrupted by `signal`.
 * @category mapping
 */
export const interrupted = (signal: NodeJS.Signals): number => 128 + (constants.signals[signal] ?? 0)
