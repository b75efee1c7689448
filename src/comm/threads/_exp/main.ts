import { Worker } from "node:worker_threads"
const mode = process.argv[2] ?? "execArgv"
const run = (w: Worker) => new Promise((res) => { w.on("message", (m) => { res(m); void w.terminate() }); w.on("error", (e) => res("error " + e)); w.on("exit", (c) => res("exit " + c)) })
const child = new URL("./child.ts", import.meta.url)
const t = performance.now()
let w: Worker
if (mode === "execArgv") w = new Worker(child, { execArgv: ["--import", "tsx"] })
else if (mode === "plain") w = new Worker(child)
else {
  const api = import.meta.resolve("tsx/esm/api")
  w = new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(child.href)}) })`, { eval: true })
}
console.log(mode, process.execArgv, await run(w), (performance.now() - t).toFixed(0), "ms")
