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
  },
})
