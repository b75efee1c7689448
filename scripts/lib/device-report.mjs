// device-report.mjs: the report of scripts/device-check.mjs, kept on disk as it grows. The GPU
// machine is lent for minutes and a run can be cut short (its time limit, a crash in native
// code), so every check rewrites the report when it ends (partial: true until the last) and
// prints one line to stderr; checks that start after the time budget is spent are recorded as
// not run, with the reason, instead of being lost with the run.
import { mkdirSync, renameSync, writeFileSync } from "node:fs"
import path from "node:path"

/**
 * The report at `target`, its fixed fields (`head`: date, device, doctor ...) and a budget in
 * seconds from now after which checks are skipped; `say` hears one line a check (stderr).
 */
export const deviceReport = ({ target, head, budgetSeconds, say = (line) => process.stderr.write(line) }) => {
  const started = performance.now()
  const deadline = started + budgetSeconds * 1000
  const checks = []
  let extra = {}

  const save = (final) => {
    const report = { ...head, partial: !final, elapsedSeconds: (performance.now() - started) / 1000, checks, ...extra }
    mkdirSync(path.dirname(target), { recursive: true })
    // Written whole then renamed: a run killed mid-write leaves the previous report.
    writeFileSync(`${target}.tmp`, `${JSON.stringify(report, null, 2)}\n`)
    renameSync(`${target}.tmp`, target)
  }
  const record = (entry) => {
    checks.push(entry)
    say(`device-check: ${entry.ok ? "ok  " : entry.skipped ? "skip" : "FAIL"} ${entry.name} (${entry.seconds.toFixed(1)} s)\n`)
    save(false)
  }
  const skipped = (name, why) => record({ name, ok: false, skipped: true, detail: `not run: ${why}`, seconds: 0 })
  const outOfTime = () => performance.now() > deadline
  const failure = (error) => String(error?.stack ?? error)

  const check = (name, run) => {
    if (outOfTime()) return skipped(name, `the run's ${budgetSeconds} s budget was spent`)
    const t0 = performance.now()
    try {
      record({ name, ok: true, detail: run(), seconds: (performance.now() - t0) / 1000 })
    } catch (error) {
      record({ name, ok: false, detail: failure(error), seconds: (performance.now() - t0) / 1000 })
    }
  }
  const checkAsync = async (name, run) => {
    if (outOfTime()) return skipped(name, `the run's ${budgetSeconds} s budget was spent`)
    const t0 = performance.now()
    try {
      record({ name, ok: true, detail: await run(), seconds: (performance.now() - t0) / 1000 })
    } catch (error) {
      record({ name, ok: false, detail: failure(error), seconds: (performance.now() - t0) / 1000 })
    }
  }
  /** A phase of checks whose own set-up may throw: recorded as a failed check, the run goes on. */
  const phase = async (name, run) => {
    try {
      await run()
    } catch (error) {
      record({ name: `${name} (set-up)`, ok: false, detail: failure(error), seconds: 0 })
    }
  }
  return {
    check,
    checkAsync,
    phase,
    skipped,
    /** Milliseconds left of the budget (at least 1). */
    remainingMs: () => Math.max(1, deadline - performance.now()),
    /** Fields added beside the checks (notYet, summary). */
    set: (fields) => {
      extra = { ...extra, ...fields }
    },
    save,
    checks,
  }
}

/** Whether a measured ratio meets its target, as the report states it. */
export const againstTarget = (ratio, target) => ({ ratio, target, meetsTarget: ratio >= target })

/**
 * A fixed stream of pseudo-random numbers in [-1, 1) (the same report for the same build; a
 * 32-bit LCG, its product taken modulo 2^32 exactly).
 */
export const randomStream = (seed = 12345) => {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    return (state / 2 ** 32) * 2 - 1
  }
}

/**
 * n floats in [-scale, scale) from `random`, filled by a loop (Float32Array.from with a mapping
 * function is ~7x slower at tens of millions). Beyond 4 Mi elements a random block of 4 Mi is
 * repeated with a per-copy offset: timing inputs of gigabytes in seconds.
 */
export const floatsFrom =
  (random, scale = 4) =>
  (n) => {
    const out = new Float32Array(n)
    const block = Math.min(n, 1 << 22)
    for (let i = 0; i < block; i++) out[i] = random() * scale
    for (let at = block, copy = 1; at < n; at += block, copy++) {
      const end = Math.min(n, at + block)
      const shift = (copy % 7) * 0.125
      for (let i = at; i < end; i++) out[i] = out[i - at] + shift
    }
    return out
  }
