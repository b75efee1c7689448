// A rank module whose loading never finishes (a top-level await that never settles).
await new Promise<never>(() => undefined)

export const program = () => undefined
