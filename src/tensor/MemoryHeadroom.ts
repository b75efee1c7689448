/**
 * MemoryHeadroom: a job that needs more memory than the machine has is refused at the
 * allocation that would take the last of it, a ConfigError (exit 2, one line naming what to
 * shrink), instead of the kernel's OOM killer ending the process (exit 137, no message: the
 * default model with `--micro-batch 100000` did that a minute into step 1). MemoryFloor refuses
 * what it can size before any work (parameters, gradients, optimizer state, logits);
 * activations depend on the schedule, recompute and routing, so they are checked as they are made.
 *
 * What is available: the kernel's estimate for this process (KernelMemory: MemAvailable, or a
 * container's limit less its usage but its file cache) plus the C heap's free bytes (the tuned
 * allocator keeps freed tensors' memory for reuse, so a process past its peak still has it:
 * native heapFreeBytes). PLEAT_MEMORY_LIMIT (a size: `8GiB`, `500MB`) caps what this process
 * may hold (its resident memory less the heap's free bytes), for a machine shared with other
 * work. A request is refused when it would leave less than `reserve` (4% of the memory, between
 * 64 MiB and 2 GiB: the V8 heap, kernels' workspaces and the runtime grow beside tensors). The
 * check runs for a new buffer of `checkEvery` or more and otherwise once per `checkEvery` of new
 * buffers (a read of /proc/meminfo and the heap's statistics: 50-70 us), never for storage a pool
 * reuses. A refusal thrown while a collective makes its result travels as the collective's
 * CommError (its `config`), which the command line reports as the ConfigError it is.
 */
import * as ConfigError from "../errors/ConfigError.js"
import { addonIfBuilt } from "../native/CpuAddon.js"
import * as ByteSize from "./ByteSize.js"
import * as KernelMemory from "./KernelMemory.js"

/**
 * The new bytes between two checks, and the request size that is always checked.
 * @category configuration
 */
export const checkEvery = 64 * 2 ** 20

/**
 * The bytes a request may not take out of `memoryBytes`: 4% of them, between 64 MiB and 2 GiB.
 * @category configuration
 */
export const reserve = (memoryBytes: number): number => Math.min(2 * 2 ** 30, Math.max(64 * 2 ** 20, Math.floor(0.04 * memoryBytes)))

/**
 * What the check reads: the bytes this process can still get (`available`), the memory they
 * come out of (`memory`) and what that memory is (`of`).
 * @category models
 */
export interface Memory {
  readonly available: number
  readonly memory: number
  readonly of: "the machine" | "the container" | "PLEAT_MEMORY_LIMIT"
}

/** The memory a process may use, and what sets it: PLEAT_MEMORY_LIMIT (in `env`), else the machine's or its container's. */
const memoryOf = (env: Readonly<Record<string, string | undefined>>): Pick<Memory, "memory" | "of"> => {
  const text = env.PLEAT_MEMORY_LIMIT
  if (text !== undefined && text !== "") return { memory: ByteSize.parse("PLEAT_MEMORY_LIMIT", text), of: "PLEAT_MEMORY_LIMIT" }
  return { memory: KernelMemory.machineBytes(), of: KernelMemory.contained() ? "the container" : "the machine" }
}

/**
 * The memory a job may use: the machine's, or PLEAT_MEMORY_LIMIT (in `env`) when set and lower;
 * a ConfigError when the variable is not a size.
 * @category getters
 */
export const limitBytes = (env: Readonly<Record<string, string | undefined>> = process.env): number => Math.min(KernelMemory.machineBytes(), memoryOf(env).memory)

/**
 * This process's memory as the kernel, the C heap and PLEAT_MEMORY_LIMIT (in `env`) tell it.
 * @category getters
 */
export const current = (env: Readonly<Record<string, string | undefined>> = process.env): Memory => {
  const { memory, of } = memoryOf(env)
  const heapFree = addonIfBuilt()?.heapFreeBytes?.() ?? 0
  const kernel = KernelMemory.available() + heapFree
  if (of !== "PLEAT_MEMORY_LIMIT") return { available: kernel, memory, of }
  const held = Math.max(0, process.memoryUsage.rss() - heapFree)
  return { available: Math.min(kernel, memory - held), memory, of }
}

const shown = (bytes: number): string => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`)

/** The refusal of a new buffer of `bytes` when `memory` is what is left. */
const refusal = (bytes: number, memory: Memory): ConfigError.ConfigError =>
  ConfigError.make(
    "memory",
    shown(memory.memory),
    `(${memory.of === "PLEAT_MEMORY_LIMIT" ? memory.of : `${memory.of}'s`}) is not enough for this job: a new buffer of ${shown(bytes)} would leave this process ${shown(Math.max(0, memory.available - bytes))}, under the ${shown(reserve(memory.memory))} kept for the runtime`,
    `${memory.of === "PLEAT_MEMORY_LIMIT" ? "a larger PLEAT_MEMORY_LIMIT, or " : ""}in training fewer tokens a micro-batch (a smaller --micro-batch or --seq), --recompute selective or full, or more processes to share the ranks (pleat launch); else a smaller model`,
  )

/**
 * A check over a stream of new buffers (see the file header): `admit` throws the refusal.
 * @category models
 */
export interface Meter {
  readonly admit: (bytes: number) => void
}

/**
 * A meter that reads `read()` (`current` by default) at each check.
 * @category constructors
 */
export const meter = (read: () => Memory = current): Meter => {
  let sinceCheck = 0
  return {
    admit: (bytes) => {
      sinceCheck += bytes
      if (bytes < checkEvery && sinceCheck < checkEvery) return
      sinceCheck = 0
      const memory = read()
      if (bytes + reserve(memory.memory) > memory.available) throw refusal(bytes, memory)
    },
  }
}

let reader: () => Memory = current
const shared = meter(() => reader())

/**
 * Checks a new buffer of `bytes` on this thread's meter (StorageRecycler's and Slabs' new buffers).
 * @category guards
 */
export const admit = (bytes: number): void => shared.admit(bytes)

/**
 * Replaces what this thread's meter reads (undefined: `current` again): a host with accounting of
 * its own, or a test that makes a machine short of memory.
 * @category mutations
 */
export const setReader = (read: (() => Memory) | undefined): void => {
  reader = read ?? current
}
