import { Worker } from "node:worker_threads"
const mode = process.argv[2], n = Number(process.argv[3] ?? 8)
const run = (w) => new Promise((res) => { w.on("message", (m) => { res(m); void w.terminate() }); w.on("error", (e) => res("error " + e)); w.on("exit", (c) => res("exit " + c)) })
const api = import.meta.resolve("tsx/esm/api")
const child = new URL("./plainchild.mjs", import.meta.url).href
const t = performance.now()
const ws = Array.from({ length: n }, () => mode === "plain" ? new Worker(new URL(child)) : mode === "regonly" ? new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); parentPort.postMessage(1) })`.replace("parentPort", "require('node:worker_threads').parentPort"), { eval: true }) : new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(child)}) })`, { eval: true }))
const rs = await Promise.all(ws.map(run))
console.log(mode, n, JSON.stringify(rs[0]), (performance.now() - t).toFixed(0), "ms")
