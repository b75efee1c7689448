/**
 * Census: who reached a collective that timed out. MPI cannot tell which member of a
 * collective never started it, so the member whose collective timed out asks the others how
 * many collectives each has issued on that group (a census question on its own MPI tag,
 * answered by each rank's JS thread, not by MPI's progress); a member that issued the timed-out
 * one arrived, one that did not never arrived, and one that does not answer within the wait is
 * stuck where its thread cannot answer (a busy loop, a blocking call) or gone. So a Timeout on
 * MPI names the missing ranks as on the other backends.
 */
import type * as Group from "../Group.js"
import type { Session } from "./MpiSession.js"

type Question = { readonly job: number; readonly t: "ask"; readonly key: string; readonly nonce: number }
type Answer = { readonly job: number; readonly t: "answer"; readonly nonce: number; readonly issued: number }

/**
 * What the census found about collective `seq` of a group.
 * @category models
 */
export interface Count {
  readonly arrived: ReadonlyArray<number>
  readonly missing: ReadonlyArray<number>
  readonly silent: ReadonlyArray<number>
}

/**
 * A job's census on this rank.
 * @category models
 */
export interface Census {
  /** Notes that this rank issued collective `seq` on the group. */
  readonly issued: (group: Group.Group, seq: number) => void
  /** Asks the group's other members; calls `done` after `waitMs` at most. */
  readonly ask: (group: Group.Group, seq: number, waitMs: number, done: (count: Count) => void) => void
  readonly close: () => void
}

/**
 * The census of job `job` on this process's rank.
 * @category constructors
 */
export const make = (session: Session, job: number): Census => {
  const counts = new Map<string, number>()
  const waiting = new Map<number, (from: number, issued: number) => void>()
  let nonce = 0
  session.onCensus(job, (from, value) => {
    const m = value as Question | Answer
    if (m.t === "ask") {
      const answer: Answer = { job, t: "answer", nonce: m.nonce, issued: counts.get(m.key) ?? 0 }
      session.sendCensus(from, answer)
    } else waiting.get(m.nonce)?.(from, m.issued)
  })
  return {
    issued: (group, seq) => counts.set(group.key, Math.max(counts.get(group.key) ?? 0, seq + 1)),
    ask: (group, seq, waitMs, done) => {
      const id = ++nonce
      const others = group.ranks.filter((r) => r !== session.rank)
      const heard = new Map<number, number>([[session.rank, counts.get(group.key) ?? 0]])
      const finish = () => {
        waiting.delete(id)
        clearTimeout(timer)
        done({
          arrived: group.ranks.filter((r) => (heard.get(r) ?? -1) > seq),
          missing: group.ranks.filter((r) => heard.has(r) && (heard.get(r) as number) <= seq),
          silent: group.ranks.filter((r) => !heard.has(r)),
        })
      }
      const timer = setTimeout(finish, waitMs)
      waiting.set(id, (from, issued) => {
        heard.set(from, issued)
        if (heard.size === group.ranks.length) finish()
      })
      const question: Question = { job, t: "ask", key: group.key, nonce: id }
      for (const r of others) session.sendCensus(r, question)
      if (others.length === 0) finish()
    },
    close: () => session.onCensus(job, undefined),
  }
}
