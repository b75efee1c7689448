// A program for MpiProcess.test.ts, started under mpirun: rank 0's command returns the exit
// status given as the first argument, or throws when it is "throw"; every process exits with
// what MpiProcess.main resolves.
import * as MpiProcess from "../../src/runtime/MpiProcess.js"

const wanted = process.argv[2] ?? "0"
const code = await MpiProcess.main(
  async () => {
    if (wanted === "throw") throw new Error("a command that fails on rank 0")
    return Number(wanted)
  },
  (line) => process.stderr.write(line),
)
process.exit(code)
