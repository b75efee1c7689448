/**
 * Progress: a one-line progress bar on a terminal (stderr), redrawn in place; on a pipe it
 * prints a plain line every `every` steps instead, so logs stay readable.
 */

/**
 * A progress bar.
 * @category models
 */
export interface Progress {
  readonly update: (done: number, text: string) => void
  readonly finish: () => void
}

/**
 * A progress bar over `total` steps writing to `stream`.
 * @category constructors
 */
export const make = (total: number, stream: NodeJS.WriteStream = process.stderr, every = 10): Progress => {
  const tty = stream.isTTY === true
  const width = 24
  return {
    update: (done, text) => {
      if (tty) {
        const filled = Math.round((done / Math.max(1, total)) * width)
        stream.write(`\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total} ${text}\u001b[K`)
      } else if (done === total || done % every === 0 || done === 1) {
        stream.write(`step ${done}/${total} ${text}\n`)
      }
    },
    finish: () => {
      if (tty) stream.write("\n")
    },
  }
}
