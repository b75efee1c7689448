// The MPI side of the contract and fault suites: run under mpirun (MpiSuite.prop.ts and
// NcclSuite.prop.ts start it), rank 0 runs every case of CASES.json as a job on the MPI backend
// (or the NCCL backend: BACKEND nccl), one after the other, and writes each job's outcome to
// OUT.json; the other processes serve the jobs.
//
//   mpirun -np 4 node --import tsx properties/comm/mpi/runner.ts CASES.json OUT.json [mpi | nccl]
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { readFileSync, writeFileSync } from "node:fs"
import type { CommError } from "../../../src/comm/CommError.js"
import * as Backend from "../../../src/runtime/Backend.js"
import type { RankFailed } from "../../../src/runtime/JobError.js"
import * as MpiBackend from "../../../src/runtime/MpiBackend.js"
import * as MpiProcess from "../../../src/runtime/MpiProcess.js"
import * as NcclBackend from "../../../src/runtime/NcclBackend.js"
import * as RankProgram from "../../../src/runtime/RankProgram.js"

export interface Case {
  readonly scenario: string
  readonly world: number
  readonly args: unknown
  readonly timeoutMs: number
}

export type Outcome =
  | { readonly ok: true; readonly results: Array<unknown>; readonly ms: number }
  | { readonly ok: false; readonly rank: number; readonly message: string; readonly comm: Partial<CommError> | undefined; readonly ms: number }

const scenarios = new URL("../scenarios.ts", import.meta.url)

const runCase = async (c: Case, backend: "mpi" | "nccl"): Promise<Outcome> => {
  const started = performance.now()
  const job = Backend.run({ world: c.world, program: RankProgram.make(scenarios, c.scenario, c.args), timeoutMs: c.timeoutMs })
  const exit = await Effect.runPromiseExit(Effect.provide(job, backend === "nccl" ? NcclBackend.layer() : MpiBackend.layer()))
  const ms = performance.now() - started
  if (Exit.isSuccess(exit)) return { ok: true, results: exit.value, ms }
  const failed = Cause.squash(exit.cause) as RankFailed
  const inner = failed.cause === undefined ? undefined : (Cause.squash(failed.cause) as CommError)
  const comm = inner?._tag === "CommError" ? { group: inner.group, op: inner.op, seq: inner.seq, ranks: [...inner.ranks], detail: inner.detail, reason: inner.reason } : undefined
  return { ok: false, rank: failed.rank, message: failed.message, comm, ms }
}

const [casesFile, outFile, backend] = process.argv.slice(2)
const code = await MpiProcess.main(
  async () => {
    const cases = JSON.parse(readFileSync(casesFile as string, "utf8")) as Array<Case>
    const out: Array<Outcome> = []
    for (const c of cases) out.push(await runCase(c, backend === "nccl" ? "nccl" : "mpi"))
    writeFileSync(outFile as string, JSON.stringify(out))
    return 0
  },
  (line) => process.stderr.write(line),
)
process.exit(code)
