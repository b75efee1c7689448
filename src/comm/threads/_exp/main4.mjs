import { Worker } from "node:worker_threads"
const mode = process.argv[2], n = Number(process.argv[3] ?? 8)
const run = (w) => new Promise((res) => { w.on("message", (m) => { res(m); void w.terminate() }); w.on("error", (e) => res("error " + e)); w.on("exit", (c) => res("exit " + c)) })
const api = import.meta.resolve("tsx/esm/api")
const pre = ["effect/Effect", "effect/Deferred", "effect/Layer", "effect/Context", "effect/Cause", "effect/Exit", "effect/Data"].map((s) => import.meta.resolve(s))
const child = new URL("./child2.ts", import.meta.url).href
const t = performance.now()
const code = mode === "pre"
  ? `Promise.all(${JSON.stringify(pre)}.map((u) => import(u))).then(() => import(${JSON.stringify(api)})).then((m) => { m.register(); return import(${JSON.stringify(child)}) })`
  : `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(child)}) })`
const ws = Array.from({ length: n }, () => new Worker(code, { eval: true }))
const rs = await Promise.all(ws.map(run))
console.log(mode, n, JSON.stringify(rs[0]), (performance.now() - t).toFixed(0), "ms")
