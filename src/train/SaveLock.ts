/**
 * SaveLock: one run at a time saves into a checkpoint directory.
 *
 * Two runs saving into one directory would plan the same step directories, write their rank
 * files over each other's, remove each other's unfinished saves as what a crash left, and each
 * print its checkpoint as saved while at most one survived. So a run that saves takes
 * DIR/.pleat-lock before it plans anything (its pid, host, the process's start time and a token
 * of its own, written to a temporary file and linked to the name, which fails when the name
 * exists; an exclusive create where the file system has no hard links) and removes it when it ends, however it ends (Train's ensuring). Another run that
 * finds the lock is refused with a ConfigError on `save` while the holder lives. A lock whose
 * holder is gone (a run killed with SIGKILL, a machine that lost power: on this host, no process
 * with that pid, or one started at another time) or whose file is damaged is taken over. A lock
 * written on another host, or under this host name in another pid namespace or before the last
 * boot (another container, a reboot), cannot be checked from here and is refused, naming the
 * file to remove.
 *
 * Residual race: two runs that find the same stale lock in the same instant can both take it
 * over (each moves it aside before linking its own); a run starting while another holds a live
 * lock is always refused. Not for `--resume`, which only reads.
 */
import { randomBytes } from "node:crypto"
import { linkSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { hostname } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import * as ConfigError from "../errors/ConfigError.js"
import * as CheckpointDirectory from "./CheckpointDirectory.js"

/**
 * The lock of a directory that a run is saving into.
 * @category models
 */
export interface SaveLock {
  /** Removes the lock if it is still this run's. */
  readonly release: () => void
}

interface Holder {
  readonly pid: number
  readonly host: string
  /** The pid namespace (/proc/self/ns/pid) and boot (boot_id) the pid counts in, null where unknown. */
  readonly space: string | null
  /** The process's start time in clock ticks since boot (/proc/PID/stat), null where unknown. */
  readonly started: number | null
  readonly since: string
  readonly token: string
}

/** The start time of process `pid` (field 22 of /proc/PID/stat), null where it cannot be read. */
const startTimeOf = (pid: number): number | null => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const value = Number(fields[19])
    return Number.isFinite(value) ? value : null
  } catch {
    return null
  }
}

/**
 * Where this process's pid means something: its pid namespace and the machine's boot (two
 * containers with one host name sharing a folder, or a machine rebooted since, count pids apart).
 */
const spaceOfThisProcess = (): string | null => {
  try {
    return `${readlinkSync("/proc/self/ns/pid")} ${readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim()}`
  } catch {
    return null
  }
}

/** Whether a process with this pid exists (one of another user's counts). */
const running = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const holderIn = (file: string): Holder | undefined => {
  try {
    const h = JSON.parse(readFileSync(file, "utf8")) as Partial<Holder>
    if (typeof h.pid !== "number" || typeof h.host !== "string" || typeof h.since !== "string" || typeof h.token !== "string") return undefined
    return {
      pid: h.pid,
      host: h.host,
      space: typeof h.space === "string" ? h.space : null,
      started: typeof h.started === "number" ? h.started : null,
      since: h.since,
      token: h.token,
    }
  } catch {
    return undefined
  }
}

/**
 * Whether the lock's pid can be checked from here: written on this host, in this pid namespace,
 * since the last boot (where either side cannot tell, the host decides).
 */
const checkable = (h: Holder): boolean => {
  if (h.host !== hostname()) return false
  const here = spaceOfThisProcess()
  return h.space === null || here === null || h.space === here
}

/** Whether the holder may still be saving: where its pid cannot be checked, always. */
const alive = (h: Holder): boolean => {
  if (!checkable(h)) return true
  if (!running(h.pid)) return false
  const started = startTimeOf(h.pid)
  return h.started === null || started === null || started === h.started
}

/**
 * Creates `file` holding `mine`, failing with EEXIST when it exists: a hard link to the written
 * temporary file (the name appears whole), or where the file system has no hard links an
 * exclusive create (O_EXCL) and a write (a reader in between sees a damaged lock).
 */
const createWhole = (temporary: string, file: string, mine: Holder): void => {
  try {
    linkSync(temporary, file)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") throw error
    writeFileSync(file, `${JSON.stringify(mine)}\n`, { flag: "wx" })
  }
}

const refusal = (dir: string, file: string, h: Holder): ConfigError.ConfigError => {
  const where = h.host !== hostname() ? `host ${h.host}` : checkable(h) ? "this host" : "this host name in another container or boot"
  return ConfigError.make(
    "save",
    dir,
    `is being saved into by another pleat run (pid ${h.pid} on ${where}, since ${h.since}; ${file})`,
    `save into another directory, or wait for that run to end${checkable(h) ? "" : `; if no run is saving there, remove ${file}`}`,
  )
}

/**
 * Takes the lock of `dir` (created if missing) for this run, or fails with a ConfigError on
 * `save`: a file or a folder pleat did not write (never written into), or a folder another run
 * is saving into (naming that run).
 * @category constructors
 */
export const take = (dir: string): Effect.Effect<SaveLock, ConfigError.ConfigError> =>
  Effect.suspend(() => {
    if (!CheckpointDirectory.mayWrite(dir)) {
      return Effect.fail(
        ConfigError.make(
          "save",
          dir,
          `is a file or a folder pleat did not write (it holds files and no ${CheckpointDirectory.marker} marker)`,
          "pass a new or empty directory, or one written by --save",
        ),
      )
    }
    mkdirSync(dir, { recursive: true })
    const file = path.join(dir, CheckpointDirectory.lockName)
    const mine: Holder = {
      pid: process.pid,
      host: hostname(),
      space: spaceOfThisProcess(),
      started: startTimeOf(process.pid),
      since: new Date().toISOString(),
      token: randomBytes(8).toString("hex"),
    }
    const temporary = `${file}.${process.pid}.${mine.token}`
    writeFileSync(temporary, `${JSON.stringify(mine)}\n`)
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          createWhole(temporary, file, mine)
          break
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 3) throw error
        }
        const held = holderIn(file)
        if (held !== undefined && alive(held)) return Effect.fail(refusal(dir, file, held))
        // Stale or damaged: moved aside in one step (only one of two takers can move it), then removed.
        const aside = `${file}.stale.${mine.token}`
        try {
          renameSync(file, aside)
          rmSync(aside, { force: true })
        } catch {
          // Another run moved it first: try again.
        }
      }
    } finally {
      rmSync(temporary, { force: true })
    }
    return Effect.succeed({
      release: () => {
        if (holderIn(file)?.token === mine.token) rmSync(file, { force: true })
      },
    })
  })
