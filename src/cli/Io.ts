/**
 * Io: what a command may touch, passed in so commands run the same in-process (tests) and in
 * the real process (bin/pleat).
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs"
import path from "node:path"

/**
 * The outputs a command writes to.
 * @category models
 */
export interface Io {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  /** Writes `text`, or its pieces one after another (a text past V8's largest string). */
  readonly writeFile: (file: string, text: string | Iterable<string>) => void
}

/**
 * The real process streams and file system.
 * @category constructors
 */
export const processIo: Io = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  writeFile: (file, text) => {
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true })
    if (typeof text === "string") return writeFileSync(file, text)
    const fd = openSync(file, "w")
    try {
      for (const piece of text) writeSync(fd, piece)
    } finally {
      closeSync(fd)
    }
  },
}

/**
 * An Io that collects everything in memory, for tests.
 * @category constructors
 */
export const memoryIo = (): Io & { out: string; err: string; files: Map<string, string> } => {
  const io = {
    out: "",
    err: "",
    files: new Map<string, string>(),
    stdout: (text: string) => void (io.out += text),
    stderr: (text: string) => void (io.err += text),
    writeFile: (file: string, text: string | Iterable<string>) => void io.files.set(file, typeof text === "string" ? text : [...text].join("")),
  }
  return io
}
