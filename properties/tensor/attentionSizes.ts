// The sizes of an attention problem as the attention properties draw them (the tensor op's and
// the native kernels' twins): batch, query and key lengths, key/value heads, query heads per
// key/value head (GQA), and the query/key and value head widths.
export interface AttentionSizes {
  readonly b: number
  readonly sq: number
  readonly sk: number
  readonly hkv: number
  readonly group: number
  readonly d: number
  readonly dv: number
}
