import { availableParallelism } from "node:os"
import { defineConfig } from "vitest/config"

// Tests live in properties/ (property suites, `*.prop.ts`) and beside examples (`*.test.ts`).
// The plain summary reporter prints the closing line `N passed, N failed` that CI reads.
export default defineConfig({
  test: {
    include: ["properties/**/*.{prop,test}.ts"],
    // Compiles src/ to dist/ first: the tests that start pleat as a process run dist/cli/main.js.
    globalSetup: ["./properties/support/buildDist.ts"],
    reporters: ["default", "./scripts/plain-summary-reporter.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two files at a time even on 2 cores (vitest's default is one worker fewer than the cores):
    // many files spend much of their time waiting on child processes (pleat commands, mpirun,
    // npm pack) rather than computing, so the second file fills the idle core. On a 2-core
    // machine this took the whole run from ~1,240 s to ~930 s; the native thread pool sleeps
    // rather than spins, so the two files' kernels share the cores without stalling each other.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // Uninitialised tensor storage is filled with NaN in tests (tensor/DType.ts), so an op that
    // leaves part of its output unwritten fails loudly.
    env: { PLEAT_POISON_UNINITIALIZED: "1" },
  },
})
