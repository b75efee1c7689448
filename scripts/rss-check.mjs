#!/usr/bin/env node
/**
 * rss-check: does `pleat train` hold its resident memory flat over a long run?
 *
 * Starts `node dist/cli/main.js train --log json --steps N [flags]` (build dist/ first with
 * `npm run build:ts`), samples the child's resident set size from /proc/PID/status (Linux)
 * at each step it logs, and after the run prints the RSS at the end of warm-up, at the end, and
 * the growth per 1,000 steps: the least-squares slope of RSS against step over the samples
 * after warm-up (the first 10% of steps). Flat memory is a slope near zero (noise is a few MB).
 *
 *   node scripts/rss-check.mjs                       # 2,000 steps of the default model
 *   node scripts/rss-check.mjs --steps 500 -- --world 2 --pp 2 --tp 1 --ep 1
 *
 * Flags after `--` go to `pleat train`. Exits 1 if the child fails. It is a measurement tool,
 * not a test: it takes as long as the training does. The bench row of the same question, on a
 * smaller job that fits in a few minutes, is `npm run bench -- memory` (bench/suites/memory.ts).
 */
import { spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import path from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const main = path.join(root, "dist", "cli", "main.js")
if (!existsSync(main)) {
  console.error(`rss-check: ${main} is missing; run npm run build:ts first`)
  process.exit(2)
}
const argv = process.argv.slice(2)
const split = argv.indexOf("--")
const own = split === -1 ? argv : argv.slice(0, split)
const extra = split === -1 ? [] : argv.slice(split + 1)
const stepsAt = own.indexOf("--steps")
const steps = stepsAt === -1 ? 2000 : Number(own[stepsAt + 1])
if (!Number.isInteger(steps) || steps < 20) {
  console.error("rss-check: --steps must be an integer of at least 20")
  process.exit(2)
}

/** The child's resident set size in MiB, or undefined once it is gone. */
const rssMiB = (pid) => {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("VmRSS:"))
    return line === undefined ? undefined : Number(line.split(/\s+/)[1]) / 1024
  } catch {
    return undefined
  }
}

const child = spawn(process.execPath, [main, "train", "--log", "json", "--steps", String(steps), ...extra], { stdio: ["ignore", "pipe", "inherit"] })
const samples = []
createInterface({ input: child.stdout }).on("line", (line) => {
  let record
  try {
    record = JSON.parse(line)
  } catch {
    return
  }
  if (record.msg !== "step") return
  const rss = rssMiB(child.pid)
  if (rss !== undefined) samples.push({ step: record.step, rss })
  if (record.step % Math.max(1, Math.floor(steps / 20)) === 0) process.stderr.write(`rss-check: step ${record.step}: ${rss?.toFixed(1)} MiB\n`)
})
child.on("exit", (code) => {
  if (code !== 0) {
    console.error(`rss-check: pleat train exited with ${code}`)
    process.exit(1)
  }
  const warm = samples.filter((s) => s.step > steps / 10)
  const n = warm.length
  const mx = warm.reduce((a, s) => a + s.step, 0) / n
  const my = warm.reduce((a, s) => a + s.rss, 0) / n
  const slope = warm.reduce((a, s) => a + (s.step - mx) * (s.rss - my), 0) / warm.reduce((a, s) => a + (s.step - mx) ** 2, 0)
  console.log(
    JSON.stringify({
      steps,
      samples: samples.length,
      rssAfterWarmupMiB: Number(warm[0]?.rss.toFixed(1)),
      rssEndMiB: Number(samples[samples.length - 1]?.rss.toFixed(1)),
      growthMiBPer1000Steps: Number((slope * 1000).toFixed(2)),
    }),
  )
})
