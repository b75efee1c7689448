/**
 * CheckpointDirectory: the layout of a checkpoint directory and the protocol that publishes a
 * checkpoint in it, crash-safe at every step.
 *
 *   DIR/pleat-checkpoint      the marker: pleat wrote DIR (a save goes only into a new path, an
 *                             empty directory or one holding this marker: nothing else is touched)
 *   DIR/step-00000042/        one checkpoint: rank-R.bin, rank-R.json per rank, manifest.json last
 *   DIR/step-00000042-2/      a second save of the same step (the first is never overwritten)
 *   DIR/latest                the name of the step directory published last
 *   DIR/.pleat-lock           while a run saves into DIR: which run (SaveLock)
 *
 * Saving step s: the driver plans a fresh step directory before the job; every rank writes and
 * flushes its files into it; once all have, the driver flushes the directory, writes the
 * manifest (temporary file, flush, rename, flush), then replaces `latest` the same way, and
 * only then prunes to the newest `keep` complete checkpoints. Every operation is durable before
 * the next (CheckpointDurable), so a crash at any point leaves the previous checkpoint or the
 * new one complete, and `latest` naming one of them.
 *
 * Loading follows `latest`; a step directory without manifest.json is an interrupted save and
 * is ignored; a missing or damaged `latest` falls back to the newest complete step directory
 * (highest step). A step directory is removed by renaming it out of sight first
 * (`.removing-step-...`), then deleting it. The next save removes what an interrupted one left.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import path from "node:path"
import * as Durable from "./CheckpointDurable.js"

/**
 * The marker file of a directory pleat wrote.
 * @category configuration
 */
export const marker = "pleat-checkpoint"

/**
 * The lock file of a directory a run is saving into (SaveLock); a directory holding nothing but
 * it (and its temporary files) counts as empty.
 * @category configuration
 */
export const lockName = ".pleat-lock"

const pointer = "latest"
const manifestFile = "manifest.json"
const pattern = /^step-(\d{8,})(?:-(\d+))?$/

/** A step directory found in a checkpoint directory. */
interface StepDirectory {
  readonly name: string
  readonly step: number
  /** 1 for the first save of the step, 2 for the next, ... */
  readonly copy: number
  /** Whether its manifest was published (else an interrupted save left it). */
  readonly complete: boolean
}

const nameOf = (step: number, copy: number): string => `step-${String(step).padStart(8, "0")}${copy > 1 ? `-${copy}` : ""}`

const isDirectory = (target: string): boolean => {
  try {
    return statSync(target).isDirectory()
  } catch {
    return false
  }
}

/**
 * Whether `dir` is one step's checkpoint (it holds a published manifest).
 * @category guards
 */
const isComplete = (dir: string): boolean => existsSync(path.join(dir, manifestFile))

/**
 * The manifest file of a step directory.
 * @category mapping
 */
export const manifestOf = (stepDir: string): string => path.join(stepDir, manifestFile)

/** The step directories of `dir`, newest first (highest step, then latest copy). */
const list = (dir: string): Array<StepDirectory> =>
  readdirSync(dir)
    .flatMap((name) => {
      const m = pattern.exec(name)
      if (m === null || !isDirectory(path.join(dir, name))) return []
      return [{ name, step: Number(m[1]), copy: m[2] === undefined ? 1 : Number(m[2]), complete: isComplete(path.join(dir, name)) }]
    })
    .sort((a, b) => b.step - a.step || b.copy - a.copy)

/** The step directory `latest` names, if it names a complete one. */
const latest = (dir: string): string | undefined => {
  let name: string
  try {
    name = readFileSync(path.join(dir, pointer), "utf8").trim()
  } catch {
    return undefined
  }
  return pattern.test(name) && isComplete(path.join(dir, name)) ? name : undefined
}

/**
 * The step directory a load reads: `dir` itself when it is one step's checkpoint, else the one
 * `latest` names, else the newest complete one; undefined when there is none.
 * @category constructors
 */
export const locate = (dir: string): string | undefined => {
  if (isComplete(dir)) return dir
  const name = latest(dir) ?? list(dir).find((s) => s.complete)?.name
  return name === undefined ? undefined : path.join(dir, name)
}

/**
 * The complete step directories beside `stepDir` (in its checkpoint directory), newest first:
 * where a resume can go when `stepDir` turns out damaged.
 * @category constructors
 */
export const completeBeside = (stepDir: string): Array<string> => {
  const parent = path.dirname(stepDir)
  const own = path.basename(stepDir)
  return list(parent)
    .filter((s) => s.complete && s.name !== own)
    .map((s) => path.join(parent, s.name))
}

/**
 * Whether a save may write into `dir`: it does not exist, it is an empty directory, or pleat
 * wrote it (it holds the marker).
 * @category guards
 */
export const mayWrite = (dir: string): boolean =>
  !existsSync(dir) || (isDirectory(dir) && (existsSync(path.join(dir, marker)) || readdirSync(dir).every((name) => name.startsWith(lockName))))

/**
 * Opens `dir` for saving the given steps: creates it and its marker, removes what interrupted
 * saves left under those steps' names, and returns a fresh step directory for each step (a
 * complete checkpoint of the same step is kept; the new one is its next copy).
 * @category constructors
 */
export const prepare = (dir: string, steps: ReadonlyArray<number>): Array<string> => {
  if (!existsSync(dir)) Durable.makeDirectory(dir)
  // Written in place: its presence is what counts, even cut short by a crash.
  if (!existsSync(path.join(dir, marker))) {
    Durable.writeFile(path.join(dir, marker), "pleat checkpoints: step-*/ directories and the pointer `latest`; pleat replaces and prunes them.\n")
    Durable.syncDirectory(dir)
  }
  const found = new Map(list(dir).map((s) => [s.name, s]))
  return steps.map((step) => {
    for (let copy = 1; ; copy++) {
      const name = nameOf(step, copy)
      const there = found.get(name)
      if (there?.complete === true) continue
      if (there !== undefined) Durable.removeDirectory(path.join(dir, name))
      found.set(name, { name, step, copy, complete: true })
      return path.join(dir, name)
    }
  })
}

/**
 * Publishes a step directory whose rank files are all written: its manifest, then `latest`.
 * @category constructors
 */
export const publish = (stepDir: string, manifestJson: string): void => {
  Durable.syncDirectory(stepDir)
  Durable.replaceFile(manifestOf(stepDir), manifestJson)
  Durable.replaceFile(path.join(path.dirname(stepDir), pointer), `${path.basename(stepDir)}\n`)
}

/**
 * Keeps the `keep` newest complete checkpoints of `dir` (always the one `latest` names) and
 * removes the rest, and what interrupted saves left, except the step directories in `spare`
 * (those this job has yet to publish).
 * @category constructors
 */
export const prune = (dir: string, keep: number, spare: ReadonlyArray<string>): void => {
  const current = latest(dir)
  const kept = new Set(current === undefined ? [] : [current])
  for (const s of list(dir)) {
    if (s.complete && kept.size < keep) kept.add(s.name)
    if (kept.has(s.name) || spare.includes(path.join(dir, s.name))) continue
    Durable.removeDirectory(path.join(dir, s.name))
  }
  // What a removal cut short by a crash left out of sight.
  for (const name of readdirSync(dir)) if (name.startsWith(".removing-step-")) rmSync(path.join(dir, name), { recursive: true, force: true })
  Durable.syncDirectory(dir)
}

/**
 * Removes the step directories a stopped job planned but did not publish.
 * @category constructors
 */
export const abandon = (planned: ReadonlyArray<string>): void => {
  for (const stepDir of planned) if (existsSync(stepDir) && !isComplete(stepDir)) Durable.removeDirectory(stepDir)
}
