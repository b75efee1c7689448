/**
 * KernelMemory: the memory the kernel would still give this process, for MemoryHeadroom.
 *
 * Without a container limit it is the machine's MemAvailable (os.freemem in Node 20's libuv).
 * Under a cgroup limit, libuv's process.availableMemory() is the limit less the cgroup's usage,
 * and that usage counts the page cache of files the cgroup read or wrote (a dataset, the
 * checkpoints): a container that has moved files for a while sits at its limit although the
 * kernel would drop that cache before failing an allocation. So the cgroup's file pages
 * (memory.stat: active_file and inactive_file, or v1's hierarchical total_ ones) count as
 * available here; shared memory is not among them.
 */
import { readFileSync } from "node:fs"
import os from "node:os"

/**
 * The file pages of a cgroup's memory.stat text (bytes): active_file + inactive_file, v1's
 * total_active_file + total_inactive_file where present (the cgroup and its children); 0 when
 * neither is there.
 * @category mapping
 */
export const fileCacheBytes = (stat: string): number => {
  const values = new Map<string, number>()
  for (const line of stat.split("\n")) {
    const [key, value] = line.trim().split(/\s+/)
    if (key !== undefined && value !== undefined && /^\d+$/.test(value)) values.set(key, Number(value))
  }
  const pair = (prefix: string) => (values.get(`${prefix}active_file`) ?? 0) + (values.get(`${prefix}inactive_file`) ?? 0)
  return values.has("total_active_file") || values.has("total_inactive_file") ? pair("total_") : pair("")
}

const readText = (file: string): string | undefined => {
  try {
    return readFileSync(file, "utf8")
  } catch {
    return undefined
  }
}

/** This process's cgroup memory.stat, v2 or v1 (undefined when neither is readable). */
const memoryStat = (): string | undefined => {
  const cgroups = readText("/proc/self/cgroup") ?? ""
  const unified = /^0::(\/.*)$/m.exec(cgroups)
  const v1 = /^\d+:[^:\n]*\bmemory\b[^:\n]*:(\/.*)$/m.exec(cgroups)
  const candidates = [
    ...(v1 !== null ? [`/sys/fs/cgroup/memory${v1[1] === "/" ? "" : v1[1]}/memory.stat`, "/sys/fs/cgroup/memory/memory.stat"] : []),
    ...(unified !== null ? [`/sys/fs/cgroup${unified[1] === "/" ? "" : unified[1]}/memory.stat`, "/sys/fs/cgroup/memory.stat"] : []),
  ]
  for (const file of candidates) {
    const text = readText(file)
    if (text !== undefined) return text
  }
  return undefined
}

/**
 * This machine's memory: the total, or a container's limit when it is lower (Node reports a
 * huge value when none is set).
 * @category getters
 */
export const machineBytes = (): number => {
  const total = os.totalmem()
  const limit = process.constrainedMemory()
  return limit > 0 && limit < total ? limit : total
}

/**
 * Whether a container's limit is this process's memory (`machineBytes` below the machine's total).
 * @category guards
 */
export const contained = (): boolean => machineBytes() < os.totalmem()

/**
 * The bytes the kernel would still give this process: MemAvailable, or under a container's limit
 * the limit less what the cgroup holds beyond its file cache.
 * @category getters
 */
export const available = (): number => {
  const free = typeof process.availableMemory === "function" ? process.availableMemory() : os.freemem()
  if (!contained()) return free
  const limit = machineBytes()
  const usage = limit - free
  return limit - Math.max(0, usage - fileCacheBytes(memoryStat() ?? ""))
}
