import { defineConfig } from "vitest/config"

// Tests live in properties/ (property suites, `*.prop.ts`) and beside examples (`*.test.ts`).
// The plain summary reporter prints the closing line `N passed, N failed` that CI reads.
export default defineConfig({
  test: {
    include: ["properties/**/*.{prop,test}.ts"],
    reporters: ["default", "./scripts/plain-summary-reporter.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Uninitialised tensor storage is filled with NaN in tests (tensor/DType.ts), so an op that
    // leaves part of its output unwritten fails loudly.
    env: { PLEAT_POISON_UNINITIALIZED: "1" },
  },
})
