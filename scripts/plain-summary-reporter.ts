// A vitest reporter that ends the run with one plain line, `N passed, N failed`, because CI
// reads that line and not vitest's own summary. A test file that fails to import counts as one
// failure, and so does every unhandled error, so a broken suite can never look green.
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

export default class PlainSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    const counts: Counts = { passed: 0, failed: 0, skipped: 0 }
    for (const module of testModules) countModule(module, counts)
    counts.failed += unhandledErrors.length
    process.stdout.write(`\nvitest: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`)
  }
}
