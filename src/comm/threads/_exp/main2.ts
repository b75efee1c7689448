import { Worker } from "node:worker_threads"
const mode = process.argv[2] ?? "execArgv"
const n = Number(process.argv[3] ?? 8)
const run = (w: Worker) => new Promise((res) => { w.on("message", (m) => { res(m); void w.terminate() }); w.on("error", (e) => res("error " + e)); w.on("exit", (c) => res("exit " + c)) })
const child = new URL("./child.ts", import.meta.url)
const api = import.meta.resolve("tsx/esm/api")
const t = performance.now()
const ws = Array.from({ length: n }, () => mode === "bootArgv"
  ? new Worker(new URL("./boot.mjs", import.meta.url), { execArgv: ["--import", "tsx"], workerData: { entry: child.href } })
  : new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(child.href)}) })`, { eval: true }))
const rs = await Promise.all(ws.map(run))
console.log(mode, n, JSON.stringify(rs[0]), (performance.now() - t).toFixed(0), "ms")
