/**
 * LoggedCommunicator: wraps any backend's communicator so every collective and transfer leaves
 * a debug record on the rank's logger: op, group, sequence, bytes and microseconds from issue to
 * completion. Backend-independent, so every backend logs the same way.
 */
import * as Effect from "effect/Effect"
import type { Logger } from "pino"
import type { CommunicatorShape } from "../comm/Communicator.js"
import * as Group from "../comm/Group.js"
import * as DType from "../tensor/DType.js"

/**
 * The communicator with debug records on `log`.
 * @category constructors
 */
export const make = (inner: CommunicatorShape, log: Logger): CommunicatorShape => {
  if (!log.isLevelEnabled("debug")) return inner
  // once a job: a rank's communicator
  return {
    ...inner,
    issue: (group, request) =>
      Effect.map(inner.issue(group, request), (pending) => {
        const started = performance.now()
        return {
          await: Effect.tap(pending.await, (out) =>
            Effect.sync(() =>
              log.debug(
                {
                  op: request.op,
                  group: Group.format(group),
                  bytesIn: request.tensor.size * DType.bytesPer(request.tensor.dtype),
                  bytesOut: out.data.length * DType.bytesPer(request.tensor.dtype),
                  micros: Math.round((performance.now() - started) * 1000),
                },
                "collective",
              ),
            ),
          ),
        }
      }),
    send: (to, t, tag) => Effect.tap(inner.send(to, t, tag), () => Effect.sync(() => log.debug({ op: "send", to, tag, bytes: t.size * DType.bytesPer(t.dtype) }, "p2p"))),
    recv: (from, tag) => Effect.tap(inner.recv(from, tag), (t) => Effect.sync(() => log.debug({ op: "recv", from, tag, bytes: t.size * DType.bytesPer(t.dtype) }, "p2p"))),
  }
}
