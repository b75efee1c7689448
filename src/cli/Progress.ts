/**
 * Progress: a one-line progress bar on a terminal (stderr), redrawn in place; on a pipe it
 * prints a plain line every `every` steps instead, so logs stay readable.
 *
 * The line always fits the terminal's width (a line wider than the terminal would wrap, and
 * `\r` would then redraw only its last row): the bar shrinks first, then the text is cut.
 * Narrow terminals (under 60 columns) get a short bar; very narrow ones only the counts.
 */

/**
 * A progress bar.
 * @category models
 */
export interface Progress {
  readonly update: (done: number, text: string) => void
  readonly finish: () => void
}

/** The widest bar drawn, in cells. */
const maxBar = 24
/** The narrowest bar worth drawing. */
const minBar = 5

/**
 * One line of the bar for `columns` terminal columns: at most `columns - 1` characters.
 * @category mapping
 */
export const line = (done: number, total: number, text: string, columns: number): string => {
  const room = Math.max(1, columns - 1)
  const counts = `${done}/${total}`
  // Bar cells plus "[", "]" and the spaces around the counts and the text.
  const barRoom = room - counts.length - text.length - 4
  const bar = Math.max(0, Math.min(maxBar, barRoom, columns < 60 ? 10 : maxBar))
  const filled = Math.round((Math.min(done, total) / Math.max(1, total)) * bar)
  const drawn = bar >= minBar ? `[${"#".repeat(filled)}${"-".repeat(bar - filled)}] ` : ""
  const head = `${drawn}${counts}`
  if (head.length >= room) return counts.slice(0, room)
  const rest = room - head.length - 1
  const shown = text.length <= rest ? text : rest > 3 ? `${text.slice(0, rest - 3)}...` : ""
  return shown === "" ? head : `${head} ${shown}`
}

/**
 * A progress bar over steps `first + 1 .. total` writing to `stream`.
 * @category constructors
 */
export const make = (total: number, first = 0, stream: NodeJS.WriteStream = process.stderr, every = 10): Progress => {
  const tty = stream.isTTY === true
  let drawn = false
  return {
    update: (done, text) => {
      if (tty) {
        stream.write(`\r${line(done, total, text, stream.columns ?? 80)}\u001b[K`)
        drawn = true
      } else if (done === total || done % every === 0 || done === first + 1) {
        stream.write(`step ${done}/${total} ${text}\n`)
      }
    },
    finish: () => {
      if (tty && drawn) stream.write("\n")
      drawn = false
    },
  }
}
