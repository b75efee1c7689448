/**
 * Addon: finding and loading the native addons that `npm run build:native` writes.
 *
 * cmake-js builds `cuda/` into `<root>/build/Release/{pleat_cpu,pleat_cuda}.node`. This file
 * sits two folders below the root both as source (`src/native/Addon.ts`, run by tsx and vitest)
 * and compiled (`dist/native/Addon.js`), so one relative URL finds the build from either.
 * Typed wrappers over the raw modules: Cpu.ts and Cuda.ts.
 */
import * as Data from "effect/Data"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import path from "node:path"
import { fileURLToPath } from "node:url"

/**
 * The addons this project builds.
 * @category models
 */
export type AddonName = "pleat_cpu" | "pleat_cuda" | "pleat_mpi"

/**
 * The folder holding the built `.node` files: `<root>/build/Release`.
 * @category configuration
 */
const buildDir: string = fileURLToPath(new URL("../../build/Release/", import.meta.url))

/**
 * Where an addon's `.node` file is expected.
 * @category configuration
 */
const addonPath = (name: AddonName): string => path.join(buildDir, `${name}.node`)

/**
 * Whether an addon's `.node` file exists (it may still fail to load).
 * @category guards
 */
export const isBuilt = (name: AddonName): boolean => existsSync(addonPath(name))

/**
 * An addon that is missing, fails to load, or lacks the functions this version expects
 * (a stale build).
 * @category errors
 */
export class AddonLoadError extends Data.TaggedError("AddonLoadError")<{
  /** Which addon. */
  readonly addon: AddonName
  /** The path that was tried. */
  readonly path: string
  /** Why it is unusable. */
  readonly reason: "not built" | "load failed" | "stale build"
  /** The loader's own message, or the missing function names. */
  readonly detail: string
}> {
  override get message(): string {
    return `${this.addon}.node ${this.reason} (${this.path}): ${this.detail}; fix: run \`npm run build:native\` in a checkout, or \`npm rebuild pleat\` where pleat is installed`
  }
}

// A CommonJS require rooted at this file: the only way ESM can load a `.node` file.
const requireNative = createRequire(import.meta.url)

/**
 * Loads an addon and checks that it exports every function in `functions`. Throws
 * AddonLoadError; Node caches the module, so repeated calls are cheap.
 * @category constructors
 */
export const load = <T>(name: AddonName, functions: ReadonlyArray<keyof T & string>): T => {
  const file = addonPath(name)
  if (!existsSync(file)) {
    throw new AddonLoadError({ addon: name, path: file, reason: "not built", detail: "file not found" })
  }
  let module: unknown
  try {
    module = requireNative(file)
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause)
    throw new AddonLoadError({ addon: name, path: file, reason: "load failed", detail })
  }
  const exports = (typeof module === "object" && module !== null ? module : {}) as Record<string, unknown>
  const missing = functions.filter((fn) => typeof exports[fn] !== "function")
  if (missing.length > 0) {
    throw new AddonLoadError({ addon: name, path: file, reason: "stale build", detail: `missing ${missing.join(", ")}` })
  }
  return exports as T
}
