/**
 * Io: what a command may touch, passed in so commands run the same in-process (tests) and in
 * the real process (bin/pleat).
 */
import { mkdirSync, writeFileSync } from "node:fs"
import path from "node:path"

/**
 * The outputs a command writes to.
 * @category models
 */
export interface Io {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  readonly writeFile: (file: string, text: string) => void
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
    writeFileSync(file, text)
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
    writeFile: (file: string, text: string) => void io.files.set(file, text),
  }
  return io
}
