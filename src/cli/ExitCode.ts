/**
 * ExitCode: the exit statuses of `pleat`.
 *
 * 0 success; 1 an internal failure (a bug: reported with its cause); 2 input that cannot work
 * (a flag, a configuration or a case file), reported as one line naming the field and the fix.
 */

/** @category models */
export const ok = 0
/** @category models */
export const failure = 1
/** @category models */
export const badInput = 2
