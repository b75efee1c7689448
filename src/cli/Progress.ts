/**
 * Progress: a one-line progress bar on a terminal (stderr), redrawn in place; on a pipe it
 * prints a plain line every `every` steps instead, so logs stay readable.
 *
 * The line always fits the terminal's width (a line wider than the terminal would wrap, and
 * `\r` would then redraw only its last row): the bar shrinks first, then the text is cut.
 * Narrow terminals (under 60 columns) get a short bar; very narrow ones only the counts.
 *
 * Used by every command whose work can take over a second: `pleat train` (per step), `pleat
 * verify` (per compared step; it clears the bar before each line it prints on stdout, so both
 * can share a terminal) and `pleat groups` on large worlds (per phase). Progress goes to stderr
 * only (`toStderr`): stdout stays what each command's contract says. `pleat demo` lays out 16
 * ranks in milliseconds and shows none.
 */
import { type Io, processIo } from "./Io.js"

/**
 * A progress bar.
 * @category models
 */
export interface Progress {
  readonly update: (done: number, text: string) => void
  /** Erases the bar from the terminal (the next update draws it again), so a line can be printed. */
  readonly clear: () => void
  readonly finish: () => void
}

/**
 * Where a progress bar is written: a terminal (`isTTY`, `columns`) or a pipe.
 * @category models
 */
export interface Sink {
  readonly write: (text: string) => unknown
  readonly isTTY?: boolean
  readonly columns?: number
}

/**
 * The stderr of a command's Io: the process's stderr (a terminal or not) for the real process,
 * else a pipe into the Io (tests).
 * @category constructors
 */
export const toStderr = (io: Io): Sink =>
  io === processIo
    ? process.stderr
    : {
        write: (text: string) => io.stderr(text),
        isTTY: false,
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
 * A progress bar over steps `first + 1 .. total` writing to `stream`; on a pipe, a line at the
 * first, every `every`-th and the last, naming the `unit` counted.
 * @category constructors
 */
export const make = (total: number, first = 0, stream: Sink = process.stderr, every = 10, unit = "step"): Progress => {
  const tty = stream.isTTY === true
  let drawn = false
  return {
    update: (done, text) => {
      if (tty) {
        stream.write(`\r${line(done, total, text, stream.columns || 80)}\u001b[K`)
        drawn = true
      } else if (done === total || done % every === 0 || done === first + 1) {
        stream.write(`${unit} ${done}/${total} ${text}\n`)
      }
    },
    clear: () => {
      if (tty && drawn) stream.write("\r\u001b[K")
      drawn = false
    },
    finish: () => {
      if (tty && drawn) stream.write("\n")
      drawn = false
    },
  }
}
