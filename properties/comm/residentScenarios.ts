// A rank program of the NCCL suite (re-exported by scenarios.ts, where the runners find programs):
// collectives on tensors whose values are in device memory (the simulated device, sim:0, one per
// process). On the NCCL backend the engine sends from the device arrays and receives into new
// ones (DeviceRuntime.inPlace), so the results are resident and nothing crosses to the host
// while they run; every other backend reads the host's copies. Either way the values are the
// same: that is what the suite compares with the local backend, and on NCCL it also checks
// `resident` and `moved`.
import * as Effect from "effect/Effect"
import * as Comm from "../../src/comm/Communicator.js"
import * as Device from "../../src/tensor/Device.js"
import { simulated } from "../../src/tensor/device/SimulatedRuntime.js"
import { to } from "../../src/tensor/ops/Transfer.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { groupOf, type MappingArgs, valuesOf } from "./scenarios.js"

export const residentCollectives = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { mapping, c, pattern } = args as { mapping: MappingArgs; c: number; pattern: ReadonlyArray<number> }
    // A group of one keeps its rows on the device too (the transport's copy there).
    const group = groupOf(mapping, rank)
    const n = group.ranks.length
    const runtime = simulated(0)
    const onDevice = (values: ReadonlyArray<number>, shape: ReadonlyArray<number>, dtype: "float32" | "float64") => to(Tensor.fromArray(values, shape, { dtype }), Device.sim(0))
    const x = onDevice(valuesOf(rank, 2 * n * c), [2 * n, c], "float32")
    const y = onDevice(valuesOf(rank, 2 * n * c, 1), [2 * n, c], "float64")
    const splits = group.ranks.map((_, j) => pattern[(rank + j) % pattern.length] as number)
    const rows = splits.reduce((a, b) => a + b, 0)
    const z = onDevice(valuesOf(rank, rows * c, 2), [rows, c], "float32")
    const before = { ...runtime.transfers }
    const sum = yield* Comm.allReduce(group, x)
    const max = yield* Comm.allReduce(group, y, "max")
    const gathered = yield* Comm.allGather(group, x)
    const scattered = yield* Comm.reduceScatter(group, y)
    const exchanged = yield* Comm.allToAllV(group, z, splits)
    const back = yield* Comm.allToAllV(group, exchanged.tensor, exchanged.recvSplits)
    const results = [sum, max, gathered, scattered, exchanged.tensor, back.tensor]
    // Counted before anything reads a result on the host.
    const moved = runtime.transfers.uploads - before.uploads + runtime.transfers.downloads - before.downloads
    return {
      resident: results.map((t) => t.isResident && Device.same(t.device, Device.sim(0))),
      moved,
      values: results.map((t) => Array.from(t.readHost())),
      recvSplits: exchanged.recvSplits,
    }
  })
