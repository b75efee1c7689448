// Example 06: a multi-process training run from a script, one rank per process under an MPI
// launcher. Rank 0 runs the script's driver (the training loop's summaries, checkpoints and
// output); every other process serves the jobs rank 0 starts (MpiProcess.main). The model is
// folded as attention tp 2 x pp 2 and MoE ep 2 x etp 1 over 4 processes; afterwards rank 0
// trains the same steps on one rank in its own process to show the processes computed what
// one rank would.
//
//   mpirun -np 4 node --import tsx examples/06-mpi-train.ts
//   (as root add --allow-run-as-root; with fewer cores than processes add --oversubscribe)
//
// Expected output (abridged):
//   4 processes: attention tp 2 x cp 1 x dp 1 x pp 2, moe etp 1 x ep 2 x edp 1
//   step 1 loss 3.
//   the loss fell: true
//   4 processes and one rank agree (float64, largest relative loss difference below 1e-12): true
import * as Effect from "effect/Effect"
import * as ParallelConfig from "../src/mapping/ParallelConfig.js"
import * as MpiProcess from "../src/runtime/MpiProcess.js"
import * as ModelConfig from "../src/train/ModelConfig.js"
import * as Optimizer from "../src/train/Optimizer.js"
import type * as RankTrainer from "../src/train/RankTrainer.js"
import * as Train from "../src/train/Train.js"

const steps = 6

const driver = async (): Promise<number> => {
  const world = MpiProcess.worldSize()
  if (world !== 4) {
    console.error(`example 06 runs on 4 processes, not ${world}: mpirun -np 4 node --import tsx examples/06-mpi-train.ts`)
    return 2
  }
  const parallel = ParallelConfig.make({ world, tp: 2, cp: 1, pp: 2, ep: 2, etp: 1 })
  const s = parallel.sizes
  console.log(`${world} processes: attention tp ${s.tp} x cp ${s.cp} x dp ${s.dp} x pp ${s.pp}, moe etp ${s.etp} x ep ${s.ep} x edp ${s.edp}`)
  const setup: RankTrainer.TrainSetup = {
    parallel,
    model: { ...ModelConfig.small, layers: 2 },
    batch: { microBatch: 1, globalBatch: 8 },
    seed: 3,
    dtype: "float64",
    optimizer: Optimizer.defaults(steps),
    auxLossCoeff: 0.01,
  }
  const run = await Effect.runPromise(Train.run(setup, { steps, backend: "mpi", onStep: (x) => console.log(`step ${x.step + 1} loss ${x.loss.toFixed(4)}`) }))
  const first = run[0]?.loss ?? 0
  const last = run[run.length - 1]?.loss ?? 0
  console.log(`the loss fell: ${last < first - 0.3}`)
  const single = await Effect.runPromise(Train.run({ ...setup, parallel: ParallelConfig.make({ world: 1 }) }, { steps, backend: "local" }))
  const worst = run.reduce((m, x, k) => Math.max(m, Math.abs(x.loss - (single[k]?.loss ?? 0)) / Math.abs(x.loss)), 0)
  console.log(`4 processes and one rank agree (float64, largest relative loss difference below 1e-12): ${worst < 1e-12}`)
  return 0
}

process.exit(await MpiProcess.main(driver, (line) => process.stderr.write(line)))
