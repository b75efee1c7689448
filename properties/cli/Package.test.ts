// pleat as a package a user installs: `npm pack` makes a tarball that installs into an empty
// project (its install script builds the native addon there), where a script imports `pleat`
// and `pleat/testing`, checks a property of its own tensor-parallel layer over random mappings,
// and `npx pleat --version` answers. The optional addons (CUDA, MPI) are switched off here to
// keep the build short (PLEAT_WITH_CUDA / PLEAT_WITH_MPI, scripts/install.mjs); the CPU addon is
// built and loaded as a user's would be.
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, describe, expect, test } from "vitest"

const root = path.resolve(import.meta.dirname, "../..")
const scratch = mkdtempSync(path.join(tmpdir(), "pleat-package-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const npm = (args: ReadonlyArray<string>, cwd: string) =>
  spawnSync("npm", [...args], {
    cwd,
    encoding: "utf8",
    timeout: 600_000,
    env: { ...process.env, PLEAT_WITH_CUDA: "OFF", PLEAT_WITH_MPI: "OFF", npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" },
  })

// A user's own layer: the tensor-parallel SwiGLU MLP with sequence parallelism, in global terms.
const layer = `import * as Effect from "effect/Effect"
import { comm, dataflow, tensor } from "pleat"
import { Mappings } from "pleat/testing"
const { Tensor, Tape, Elementwise, Reduce, Shape } = tensor
const [rows, hidden, ffn] = [12, 3, 12]
const f64 = (seed, shape) => Tensor.fromArray(Array.from({ length: shape[0] * shape[1] }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233)), shape, { dtype: "float64" })
export const mlp = (rank, { mapping, seed }) => Effect.gen(function* () {
  const tp = comm.Group.ofFamily(Mappings.toConfig(mapping), "tp", rank)
  const [parts, index] = [tp.ranks.length, tp.ranks.indexOf(rank)]
  const share = rows / parts
  const tape = Tape.make()
  const x = tape.parameter(Shape.rows(f64(seed, [rows, hidden]), index * share, (index + 1) * share))
  const w = { wGate: dataflow.ParallelLinear.columnShard(f64(seed + 1, [hidden, ffn]), index, parts), wUp: dataflow.ParallelLinear.columnShard(f64(seed + 2, [hidden, ffn]), index, parts), wDown: dataflow.ParallelLinear.rowShard(f64(seed + 3, [ffn, hidden]), index, parts) }
  const y = yield* dataflow.DenseMlp.forward(x, w, { tp, sequenceParallel: true })
  yield* tape.backwardEffect(Reduce.sumAll(Elementwise.mul(y, y)))
  const gather = (t) => Effect.map(comm.Communicator.allGather(tp, t), Tensor.toArray)
  return { y: yield* gather(y), dx: yield* gather(x.grad) }
})
`

const check = `import { mapping, tensor } from "pleat"
import { EqualsOneRank, Mappings } from "pleat/testing"
const config = mapping.ParallelConfig.make({ world: 16, tp: 2, cp: 2, pp: 2, ep: 4, etp: 1 })
console.log("dp " + config.sizes.dp + " edp " + config.sizes.edp)
const product = tensor.Matmul.matmul(tensor.Tensor.fromArray([1, 2, 3, 4], [2, 2]), tensor.Tensor.fromArray([1, 0, 0, 1], [2, 2]))
console.log("matmul " + tensor.Tensor.toArray(product).join(","))
await EqualsOneRank.check({ module: new URL("./layer.mjs", import.meta.url), export: "mlp", mappings: Mappings.mappings({ maxWorld: 8 }), numRuns: 10, absolute: 1e-12, relative: 1e-12 })
console.log("property: mlp equals one rank")
`

describe("npm pack, install into an empty project, use", () => {
  test("imports pleat and pleat/testing, proves a property of its own layer, runs npx pleat", () => {
    // --ignore-scripts: prepack's build of dist/ already ran in the tests' global setup
    // (properties/support/buildDist.ts); running it again here would rewrite dist/ while the
    // other test file running beside this one may be starting dist/cli/main.js.
    const packed = npm(["pack", "--ignore-scripts", "--pack-destination", scratch], root)
    expect(packed.status, packed.stderr).toBe(0)
    const tarball = readdirSync(scratch).find((f) => f.endsWith(".tgz"))
    expect(tarball).toBeDefined()
    const project = path.join(scratch, "user")
    mkdirSync(project)
    // The README's allowScripts key for a tarball (file: and its absolute path); strict, so a key npm does not match fails the install.
    const source = path.join(scratch, tarball as string)
    writeFileSync(
      path.join(project, "package.json"),
      JSON.stringify({ name: "user-project", version: "1.0.0", type: "module", private: true, allowScripts: { [`file:${source}`]: true } }),
    )
    const installed = npm(["install", "--prefer-offline", "--strict-allow-scripts", source], project)
    expect(installed.status, `${installed.stdout}\n${installed.stderr}`).toBe(0)
    expect(existsSync(path.join(project, "node_modules", "pleat", "build", "Release", "pleat_cpu.node"))).toBe(true)
    expect(existsSync(path.join(project, "node_modules", "pleat", "dist", "api", "index.d.ts"))).toBe(true)
    expect(existsSync(path.join(project, "node_modules", "pleat", "src"))).toBe(false)

    writeFileSync(path.join(project, "layer.mjs"), layer)
    writeFileSync(path.join(project, "check.mjs"), check)
    const run = spawnSync(process.execPath, ["check.mjs"], { cwd: project, encoding: "utf8", timeout: 120_000 })
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toContain("dp 2 edp 2")
    expect(run.stdout).toContain("matmul 1,2,3,4")
    expect(run.stdout).toContain("property: mlp equals one rank")

    const doctor = spawnSync("npx", ["--no-install", "pleat", "doctor", "--json"], { cwd: project, encoding: "utf8", timeout: 60_000 })
    expect((JSON.parse(doctor.stdout) as { cpu: { kernels: { built: boolean } } }).cpu.kernels.built).toBe(true)

    const version = spawnSync("npx", ["--no-install", "pleat", "--version"], { cwd: project, encoding: "utf8", timeout: 60_000 })
    expect(version.status, version.stderr).toBe(0)
    expect(version.stdout.trim()).toMatch(/^pleat \d+\.\d+\.\d+$/)
  }, 900_000)
})
