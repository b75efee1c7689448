#!/usr/bin/env node
// The `pleat` executable: runs the command line against the real process.
import { main } from "./Cli.js"
import { processIo } from "./Io.js"

// A reader that stops early (`pleat groups ... | head`) is not an error of ours.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0)
  throw error
})
const ended = await main(process.argv.slice(2), processIo)
// Interrupted: end now, taking any thread still stopping with the process.
if (ended.signal !== undefined) process.exit(ended.code)
process.exitCode = ended.code
