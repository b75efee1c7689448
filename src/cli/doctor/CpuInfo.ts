/**
 * CpuInfo: what /proc/cpuinfo says about the processor: its model name and how many physical
 * cores it has (distinct physical id / core id pairs), as opposed to the hardware threads the
 * process may use (os.availableParallelism). Open MPI counts a machine's slots in cores, so
 * `pleat launch` needs the core count; `pleat doctor` prints the model. Elsewhere than Linux,
 * or where the file lacks the fields, each answer is undefined.
 */
import { readFileSync } from "node:fs"

/**
 * The processor as /proc/cpuinfo describes it.
 * @category models
 */
export interface CpuInfo {
  /** The first "model name" line ("AMD EPYC 9R45"), if any. */
  readonly model: string | undefined
  /** Distinct (physical id, core id) pairs, if the file lists them. */
  readonly physicalCores: number | undefined
}

/**
 * Parses the text of /proc/cpuinfo (one block per logical processor).
 * @category constructors
 */
export const parse = (text: string): CpuInfo => {
  let model: string | undefined
  const cores = new Set<string>()
  let socket = "0"
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":")
    if (colon < 0) continue
    const key = line.slice(0, colon).trim()
    const value = line.slice(colon + 1).trim()
    if (key === "model name" && model === undefined && value !== "") model = value
    else if (key === "physical id") socket = value
    // "core id" follows "physical id" within a processor's block.
    else if (key === "core id") cores.add(`${socket}/${value}`)
  }
  return { model, physicalCores: cores.size > 0 ? cores.size : undefined }
}

/**
 * Reads this machine's /proc/cpuinfo (both fields undefined where it cannot be read).
 * @category constructors
 */
export const read = (): CpuInfo => {
  try {
    return parse(readFileSync("/proc/cpuinfo", "utf8"))
  } catch {
    return { model: undefined, physicalCores: undefined }
  }
}
