// A vitest reporter that ends the run with one plain line, `N passed, N failed`, because CI
// reads that line and not vitest's own summary. A test file that fails to import counts as one
// failure, and so does every unhandled error, so a broken suite can never look green.
// Before it, the slowest files (import and tests, in seconds): CI must stay under 30 minutes
// on 2 cores, and this says where the time goes.
import type { Reporter, TestModule } from "vitest/node"

interface Counts {
  passed: number
  failed: number
  skipped: number
}

const countModule = (module: TestModule, counts: Counts): void => {
  let sawTest = false
  for (const test of module.children.allTests()) {
    sawTest = true
    const state = test.result().state
    if (state === "passed") counts.passed++
    else if (state === "failed") counts.failed++
    else counts.skipped++
  }
  if (!sawTest && module.state() === "failed") counts.failed++
  else if (module.errors().length > 0) counts.failed += module.errors().length
}

/** How many of the slowest files the run lists. */
const slowestShown = 10

const slowest = (modules: ReadonlyArray<TestModule>): string => {
  const timed = modules.map((m) => {
    const d = m.diagnostic()
    return { file: m.relativeModuleId, seconds: (d.collectDuration + d.duration) / 1000 }
  })
  timed.sort((a, b) => b.seconds - a.seconds)
  const total = timed.reduce((sum, t) => sum + t.seconds, 0)
  const lines = timed.slice(0, slowestShown).map((t) => `  ${t.seconds.toFixed(1).padStart(7)} s  ${t.file}`)
  return `\nslowest test files (import and tests; ${total.toFixed(0)} s over ${timed.length} files):\n${lines.join("\n")}\n`
}

export default class PlainSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    if (testModules.length > 1) process.stdout.write(slowest(testModules))
    const counts: Counts = { passed: 0, failed: 0, skipped: 0 }
    for (const module of testModules) countModule(module, counts)
    counts.failed += unhandledErrors.length
    process.stdout.write(`\nvitest: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`)
  }
}
