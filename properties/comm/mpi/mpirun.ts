// Starting test programs under mpirun: whether MPI is here (mpirun on PATH and the MPI addon
// built), and a launch of N processes of a program (TypeScript through tsx) with the flags this machine
// needs (root allowed, more processes than cores, no binding).
import { spawn, spawnSync } from "node:child_process"
import * as MpiAddon from "../../../src/native/MpiAddon.js"

/** Why the MPI tests cannot run here, or undefined when they can. */
export const missing = (): string | undefined => {
  const found = spawnSync("mpirun", ["--version"], { encoding: "utf8" })
  if (found.error !== undefined || found.status !== 0) return "mpirun is not on PATH (Debian: apt-get install openmpi-bin libopenmpi-dev, then npm run build:native)"
  const status = MpiAddon.status()
  return status.available ? undefined : status.reason
}

export interface Ended {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/**
 * Environment for mpirun on a machine like this one (root, 2 cores), and in containers that
 * forbid one process reading another's memory (Open MPI's vader single-copy via CMA; copying
 * through shared memory works everywhere).
 */
export const mpiEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  OMPI_MCA_btl_vader_single_copy_mechanism: "none",
  OMPI_ALLOW_RUN_AS_ROOT: "1",
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1",
  OMPI_MCA_rmaps_base_oversubscribe: "1",
})

/** Runs a command with the MPI environment; collects its output; `onStart` gets its pid. */
export const collect = (command: string, args: ReadonlyArray<string>, timeoutMs: number, onStart?: (pid: number) => void, env: NodeJS.ProcessEnv = {}): Promise<Ended> =>
  new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(command, args, { env: { ...mpiEnv(), ...env } })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => {
      stdout += d
    })
    child.stderr.on("data", (d) => {
      stderr += d
    })
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    if (child.pid !== undefined) onStart?.(child.pid)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started })
    })
  })

/**
 * Whether a job that MPI_Abort ended ended with `code`: mpirun's exit status, or mpirun itself
 * killed by SIGSEGV in PMIx_server_finalize while it tore the aborted job down (Open MPI 4.1.4 with
 * PMIx 3, Debian 12: seen once in a full test run on a loaded 2-core machine, after the ranks had
 * printed and aborted; mpirun's own teardown, not the job's outcome).
 */
export const abortedWith = (run: Ended, code: number): boolean =>
  run.code === code || (run.code === null && run.signal === "SIGSEGV" && run.stderr.includes("PMIx_server_finalize"))

/**
 * Runs `node <args>` in `np` processes under mpirun, through the tsx loader when the program
 * (args[0]) is a TypeScript file; `onStart` gets mpirun's pid.
 */
export const mpirun = (np: number, args: ReadonlyArray<string>, timeoutMs: number, onStart?: (pid: number) => void, env: NodeJS.ProcessEnv = {}): Promise<Ended> =>
  collect("mpirun", ["-np", String(np), "--bind-to", "none", process.execPath, ...((args[0] ?? "").endsWith(".ts") ? ["--import", "tsx"] : []), ...args], timeoutMs, onStart, env)
