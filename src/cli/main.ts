#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1 node --no-concurrent-marking
// The `pleat` executable: runs the command line against the real process.
import { main } from "./Cli.js"
import { processIo } from "./Io.js"
import * as LaunchStatus from "../runtime/LaunchStatus.js"
import * as MpiProcess from "../runtime/MpiProcess.js"
import * as SignalNet from "../native/SignalNet.js"

// A reader that stops early (`pleat groups ... | head`) is not an error of ours.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0)
  throw error
})
// Under mpirun or srun: rank 0 runs the command, the other processes serve its jobs (MpiProcess).
if (MpiProcess.launched()) {
  let interrupted: number | undefined
  const code = await MpiProcess.main(async () => {
    const ended = await main(process.argv.slice(2), processIo)
    if (ended.signal !== undefined) interrupted = ended.code
    return ended.code
  }, processIo.stderr)
  // Under pleat launch the status goes back through its file, sparing mpirun's banner (LaunchStatus).
  process.exit(interrupted ?? LaunchStatus.exitWith(code))
}
const ended = await main(process.argv.slice(2), processIo)
// Interrupted: end now, taking any thread still stopping with the process. Node's exit joins the
// worker threads, and a worker inside a long kernel cannot stop until it returns: a second later
// the native timer ends the process instead (the line is out already).
if (ended.signal !== undefined) {
  SignalNet.exitWithin(ended.code, 1000)
  process.exit(ended.code)
}
process.exitCode = ended.code
