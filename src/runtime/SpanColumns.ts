/**
 * SpanColumns: a trace's spans held column by column (rank, category, name, start, end) in typed
 * arrays, each name once in a table: about 25 bytes a span where an object each took ~200, so a
 * long traced run (millions of spans: 2,000 steps of 8 ranks make 4.6M) holds a tenth of the
 * memory. The columns grow by doubling; a span is read back as an object when asked.
 */
import type { Span } from "./Trace.js"

const categories: ReadonlyArray<Span["category"]> = ["compute", "comm", "idle", "step"]

/**
 * Spans in columns.
 * @category models
 */
export class SpanColumns {
  #rank = new Int32Array(1024)
  #category = new Uint8Array(1024)
  #name = new Int32Array(1024)
  #start = new Float64Array(1024)
  #end = new Float64Array(1024)
  readonly #names: Array<string> = []
  readonly #nameIds = new Map<string, number>()
  #length = 0

  /** How many spans are held. */
  get length(): number {
    return this.#length
  }

  /** Appends a span. */
  push(span: Span): void {
    if (this.#length === this.#rank.length) this.#grow()
    const i = this.#length++
    let id = this.#nameIds.get(span.name)
    if (id === undefined) {
      id = this.#names.length
      this.#names.push(span.name)
      this.#nameIds.set(span.name, id)
    }
    this.#rank[i] = span.rank
    this.#category[i] = categories.indexOf(span.category)
    this.#name[i] = id
    this.#start[i] = span.start
    this.#end[i] = span.end
  }

  /** The i-th span (0 <= i < length). */
  at(i: number): Span {
    return {
      rank: this.#rank[i] as number,
      name: this.#names[this.#name[i] as number] as string,
      category: categories[this.#category[i] as number] as Span["category"],
      start: this.#start[i] as number,
      end: this.#end[i] as number,
    }
  }

  /** The rank of the i-th span. */
  rankAt(i: number): number {
    return this.#rank[i] as number
  }

  /** The start of the i-th span. */
  startAt(i: number): number {
    return this.#start[i] as number
  }

  /** Every span in order, as objects. */
  toArray(): Array<Span> {
    return Array.from({ length: this.#length }, (_, i) => this.at(i))
  }

  /**
   * The indices of every rank's spans, in order, by rank ascending: one pass to count and one to
   * place (4 bytes a span while a trace is written).
   */
  byRank(): Array<{ readonly rank: number; readonly indices: Int32Array }> {
    const counts = new Map<number, number>()
    for (let i = 0; i < this.#length; i++) counts.set(this.#rank[i] as number, (counts.get(this.#rank[i] as number) ?? 0) + 1)
    const lists = new Map([...counts].map(([rank, n]) => [rank, { indices: new Int32Array(n), filled: 0 }]))
    for (let i = 0; i < this.#length; i++) {
      const list = lists.get(this.#rank[i] as number) as { indices: Int32Array; filled: number }
      list.indices[list.filled++] = i
    }
    return [...lists].sort((a, b) => a[0] - b[0]).map(([rank, list]) => ({ rank, indices: list.indices }))
  }

  #grow(): void {
    const n = this.#rank.length * 2
    const grown = <T extends Int32Array | Uint8Array | Float64Array>(from: T, make: (n: number) => T): T => {
      const to = make(n)
      to.set(from as never)
      return to
    }
    this.#rank = grown(this.#rank, (k) => new Int32Array(k))
    this.#category = grown(this.#category, (k) => new Uint8Array(k))
    this.#name = grown(this.#name, (k) => new Int32Array(k))
    this.#start = grown(this.#start, (k) => new Float64Array(k))
    this.#end = grown(this.#end, (k) => new Float64Array(k))
  }
}
