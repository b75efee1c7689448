// `pleat import` of models transformers itself made (save_pretrained), where a Python with torch
// and transformers is found ($PLEAT_PYTHON, python3): Mixtral, Qwen2-MoE with a dense layer,
// Qwen3-MoE, dots1, DeepSeek-V3 (rotary pairs interleaved or not, with YaRN) and GPT-OSS (every
// bias non-zero) import into the
// loss transformers computes. (The rest of `pleat import`: ImportCommand.test.ts.)
import { spawnSync } from "node:child_process"
import path from "node:path"
import { describe, expect, test } from "vitest"
import { evalLoss, fresh, run } from "./cliRun.js"
import { uint16File } from "./tokenFiles.js"
import { python, sayIfSkipped, transformersLosses } from "./transformersPython.js"

const oneRank = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
const window = [3, 14, 15, 9, 26, 5, 35, 8, 39]

sayIfSkipped("pleat import of transformers' models")

describe.skipIf(python === undefined)("models transformers made", () => {
  test("import into the loss transformers computes (Mixtral; Qwen2-MoE with a dense layer; Qwen3-MoE; dots1; DeepSeek-V3 with rope_interleave true and false, and with YaRN; GPT-OSS with its biases)", async () => {
    const made = fresh("import-transformers")
    const script = `
import torch, sys
from transformers import MixtralConfig, MixtralForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM, Dots1Config, Dots1ForCausalLM
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM
torch.manual_seed(0)
MixtralForCausalLM(MixtralConfig(vocab_size=40, hidden_size=16, intermediate_size=12, num_hidden_layers=2, num_attention_heads=4,
  num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=64)).save_pretrained(sys.argv[1] + "/mixtral")
m = Qwen2MoeForCausalLM(Qwen2MoeConfig(vocab_size=40, hidden_size=16, intermediate_size=24, moe_intermediate_size=12, shared_expert_intermediate_size=8,
  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2, max_position_embeddings=64,
  mlp_only_layers=[1], norm_topk_prob=True))
with torch.no_grad():
  for p in m.parameters(): p.normal_(0, 0.3)
  for n, p in m.named_parameters():
    if n.endswith("proj.bias"): p.zero_()
m.save_pretrained(sys.argv[1] + "/qwen")
q = Qwen3MoeForCausalLM(Qwen3MoeConfig(vocab_size=40, hidden_size=16, intermediate_size=24, moe_intermediate_size=12, num_hidden_layers=3,
  num_attention_heads=4, num_key_value_heads=2, head_dim=6, num_experts=4, num_experts_per_tok=2, max_position_embeddings=64,
  decoder_sparse_step=2, norm_topk_prob=True))
with torch.no_grad():
  for p in q.parameters(): p.normal_(0, 0.3)
q.save_pretrained(sys.argv[1] + "/qwen3")
d = Dots1ForCausalLM(Dots1Config(vocab_size=40, hidden_size=16, intermediate_size=24, moe_intermediate_size=12, num_hidden_layers=3,
  num_attention_heads=4, num_key_value_heads=2, head_dim=6, n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=2,
  n_group=4, topk_group=1, first_k_dense_replace=1, norm_topk_prob=True, routed_scaling_factor=2.0, max_position_embeddings=64))
with torch.no_grad():
  for p in d.parameters(): p.normal_(0, 0.3)
  for l in d.model.layers[1:]: l.mlp.gate.e_score_correction_bias.normal_(0, 0.2)
d.save_pretrained(sys.argv[1] + "/dots1")
yarn = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "original_max_position_embeddings": 4, "mscale": 1.0, "mscale_all_dim": 0.7, "beta_fast": 8.0, "beta_slow": 2.0}
for name, interleave, q_lora, rope in [("deepseek", True, 12, None), ("deepseek-rotate-half", False, None, None), ("deepseek-yarn", True, 12, yarn)]:
  v = DeepseekV3ForCausalLM(DeepseekV3Config(vocab_size=40, hidden_size=16, intermediate_size=24, moe_intermediate_size=12, num_hidden_layers=3,
    num_attention_heads=4, num_key_value_heads=4, n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=2, n_group=4, topk_group=1, first_k_dense_replace=1,
    norm_topk_prob=True, routed_scaling_factor=2.0, max_position_embeddings=64, q_lora_rank=q_lora, kv_lora_rank=8, qk_nope_head_dim=4,
    qk_rope_head_dim=6, v_head_dim=5, rope_interleave=interleave, **({} if rope is None else {"rope_parameters": rope})))
  with torch.no_grad():
    for p in v.parameters(): p.normal_(0, 0.3)
    for l in v.model.layers[1:]: l.mlp.gate.e_score_correction_bias.normal_(0, 0.2)
  v.save_pretrained(sys.argv[1] + "/" + name)
from transformers import GptOssConfig, GptOssForCausalLM
g = GptOssForCausalLM(GptOssConfig(vocab_size=40, hidden_size=16, intermediate_size=12, num_hidden_layers=2, num_attention_heads=4,
  num_key_value_heads=2, head_dim=4, num_local_experts=4, num_experts_per_tok=2, sliding_window=3,
  layer_types=["sliding_attention", "full_attention"], max_position_embeddings=64))
with torch.no_grad():
  for p in g.parameters(): p.normal_(0, 0.3)
g.save_pretrained(sys.argv[1] + "/gptoss")
`
    const made_ = spawnSync(python as string, ["-c", script, made], { encoding: "utf8" })
    expect(made_.status, made_.stderr).toBe(0)
    const tokens = uint16File(window)
    // Qwen3-MoE: heads of width 6 (hidden 16 / 4 heads would be 4), q/k norms, MoE in layer 1 only (decoder_sparse_step 2).
    // dots1: sigmoid routing with non-zero expert biases, 4 groups keeping 1, scaling 2, two shared experts' widths, a dense first layer.
    // DeepSeek-V3: dots1's MoE with multi-latent attention, rotary pairs interleaved with a query latent, rotate-half without one.
    // DeepSeek-V3 with YaRN: factor 40 over 4 positions, its softmax factor from mscale_all_dim 0.7.
    // GPT-OSS: every bias (q, k, v, o, the router's, the experts') non-zero, sinks, the window on its first layer, YaRN as its config gives it.
    for (const name of ["mixtral", "qwen", "qwen3", "dots1", "deepseek", "deepseek-rotate-half", "deepseek-yarn", "gptoss"]) {
      const dir = path.join(made, name)
      const out = path.join(fresh("import-tf-out"), "ckpt")
      const r = await run(["import", "--model-dir", dir, "--out", out])
      expect(r.status, r.err).toBe(0)
      const loss = await evalLoss([...oneRank, "--config", `${out}/model.json`, "--resume", out, "--steps", "0", "--seq", "8", "--global-batch", "1"], tokens)
      const theirs = transformersLosses(dir, tokens, 8, "float32").losses[0] as number
      expect(Math.abs(theirs - loss), `${name}: transformers ${theirs}, pleat ${loss}`).toBeLessThan(1e-4)
    }
  }, 120_000)
})
