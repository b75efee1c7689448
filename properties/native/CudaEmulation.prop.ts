// The CUDA kernels' per-element work (cuda/src/kernels/ops_element.h: what each thread of the
// grid-stride kernels in ops.cu computes) run on the host by pleat_kernel_emulation, against the
// CPU kernels they twin (kernelTwins.ts, dispatchTwins.ts: gatherRows, the MoE permute, unpermute
// and its backward, AdamW, RoPE, SwiGLU and its backward, the RMSNorm backward, the element-wise
// binary ops, scale and broadcast sums (elementwiseTwins.ts), and the cross-entropy row sums and gradient bit for bit, the host's exp being the CPU kernels' std::exp; the router's experts equal to Router.select's and
// its probs within one float ulp of probsFor's, Math.exp; the gated activation (gated_sinks_element.h) bit for bit with
// the CPU kernel's scalar path, the attention sinks' fold and gradient within exp's and log's last bits of
// AttentionSinks.ts: gatedSinksTwins.ts). So the kernels' indexing, order of
// operations and selection are tested on every machine; CudaOps.prop.ts and scripts/device-check
// run the same twins on the GPU (the device's exp, the launch shapes, the block reductions). The
// emulator is built with the CPU addon (cuda/CMakeLists.txt).
import { spawnSync } from "node:child_process"
import { describe, expect, test } from "vitest"
import { attentionTwins } from "./attentionTwins.js"
import { dispatchTwins } from "./dispatchTwins.js"
import { elementwiseTwins } from "./elementwiseTwins.js"
import { gatedSinksTwins } from "./gatedSinksTwins.js"
import { emulatorBuilt, twins } from "./kernelTwins.js"

const emulator = new URL("../../build/Release/pleat_kernel_emulation", import.meta.url).pathname

describe.runIf(emulatorBuilt)("the CUDA kernels' element functions on the host, against the CPU kernels", () => {
  for (const twin of [...twins, ...dispatchTwins, ...elementwiseTwins, ...attentionTwins, ...gatedSinksTwins]) test(twin.name, () => twin.run("host", 25))

  test("an unknown op or a short request exits 2", () => {
    expect(spawnSync(emulator, ["nope"], { input: Buffer.alloc(0) }).status).toBe(2)
    expect(spawnSync(emulator, ["rope"], { input: Buffer.alloc(8) }).status).toBe(2)
  })
})
