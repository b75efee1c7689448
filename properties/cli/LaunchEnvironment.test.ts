// The backend comes from --backend (or the config file), else from the launch environment, else
// the default. PLEAT_BACKEND names one (checked like the flag). Processes that an MPI launcher
// started together (mpirun, PMI, srun) pick the mpi backend, whose world is the number of
// processes: a --world that disagrees, or a --backend that would run every rank in each process,
// is refused with exit 2 and one line. Several processes from torchrun-style variables, which
// MPI cannot join, are refused too. (Real multi-process runs: properties/train/MpiTrain.prop.ts.)
import { afterEach, describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"

const small = [
  "--world",
  "2",
  "--tp",
  "1",
  "--cp",
  "1",
  "--pp",
  "2",
  "--ep",
  "1",
  "--layers",
  "2",
  "--hidden",
  "16",
  "--seq",
  "8",
  "--global-batch",
  "4",
  "--steps",
  "1",
  "--log",
  "json",
]
const variables = ["PLEAT_BACKEND", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "RANK", "WORLD_SIZE"]

const run = async (argv: ReadonlyArray<string>, env: Record<string, string>) => {
  Object.assign(process.env, env)
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err }
}

afterEach(() => {
  for (const v of variables) delete process.env[v]
})

/** The backend named in the JSON start record. */
const backendOf = (out: string): string => JSON.parse(out.split("\n")[0] as string).backend

describe("the backend from the launch environment", () => {
  test("PLEAT_BACKEND picks the backend when no flag does; the flag wins", async () => {
    const chosen = await run(["train", ...small], { PLEAT_BACKEND: "local-zero-copy" })
    expect(chosen.status, chosen.err).toBe(0)
    expect(backendOf(chosen.out)).toBe("local-zero-copy")
    const flagged = await run(["train", ...small, "--backend", "local"], { PLEAT_BACKEND: "local-zero-copy" })
    expect(flagged.status, flagged.err).toBe(0)
    expect(backendOf(flagged.out)).toBe("local")
  })

  test("an unknown PLEAT_BACKEND is a user error naming it", async () => {
    const r = await run(["train", ...small], { PLEAT_BACKEND: "bogus" })
    expect(r.status).toBe(2)
    expect(r.err.trimEnd().split("\n")).toHaveLength(1)
    expect(r.err).toContain('PLEAT_BACKEND: "bogus" is not a backend')
  })

  for (const [rank, size, launcher] of [
    ["OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "mpirun"],
    ["PMI_RANK", "PMI_SIZE", "PMI"],
    ["SLURM_PROCID", "SLURM_NTASKS", "srun"],
  ] as const) {
    test(`${launcher} with 4 processes: a --world of 2 is refused naming the launch, before any work`, async () => {
      const r = await run(["train", ...small], { [rank]: "0", [size]: "4" })
      expect(r.status).toBe(2)
      expect(r.out).toBe("")
      expect(r.err.trimEnd().split("\n")).toHaveLength(1)
      expect(r.err).toContain("--world: 2 does not match the launch")
      expect(r.err).toContain(`${launcher}`)
      expect(r.err).toContain("started 4 processes")
    })

    test(`${launcher} with 4 processes: --backend local is refused (each process would run every rank)`, async () => {
      const r = await run(["train", ...small, "--backend", "local"], { [rank]: "0", [size]: "4" })
      expect(r.status).toBe(2)
      expect(r.err.trimEnd().split("\n")).toHaveLength(1)
      expect(r.err).toContain('--backend: "local" runs every rank inside one process, but 4 processes were launched')
    })
  }

  test("torchrun-style variables with several processes are refused: MPI cannot join them", async () => {
    const r = await run(["train", ...small], { RANK: "0", WORLD_SIZE: "4" })
    expect(r.status).toBe(2)
    expect(r.err.trimEnd().split("\n")).toHaveLength(1)
    expect(r.err).toContain("WORLD_SIZE: 4")
    expect(r.err).toContain("only through MPI")
  })

  test("a launcher with one process is fine", async () => {
    const r = await run(["train", ...small], { OMPI_COMM_WORLD_RANK: "0", OMPI_COMM_WORLD_SIZE: "1" })
    expect(r.status, r.err).toBe(0)
    expect(backendOf(r.out)).toBe("local")
  })
})
