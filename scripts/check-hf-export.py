"""Loads a model directory written by `pleat export` with transformers and prints, as one JSON
object, the language-model loss (mean next-token cross-entropy) of each window of seq+1 token
ids in a token file (uint16 or uint32, as pleat's --data), computed in float64 or float32.

usage: python check-hf-export.py MODEL_DIR TOKENS.bin SEQ [uint16|uint32] [float64|float32]

pleat's tests compare it with `pleat train --resume ... --eval-data` on the same windows
(properties/train/HfExport.test.ts); it needs torch and transformers.
"""
import json
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

model_dir, tokens_file, seq = sys.argv[1], sys.argv[2], int(sys.argv[3])
id_dtype = sys.argv[4] if len(sys.argv) > 4 else "uint16"
dtype = {"float64": torch.float64, "float32": torch.float32}[sys.argv[5] if len(sys.argv) > 5 else "float64"]
ids = np.fromfile(tokens_file, dtype=np.dtype(id_dtype).newbyteorder("<")).astype(np.int64)
windows = len(ids) // (seq + 1)
# Eager attention and experts: transformers 5's grouped expert GEMM has no float64.
options = {"dtype": dtype, "attn_implementation": "eager"}
if int(transformers.__version__.split(".")[0]) >= 5:
    options["experts_implementation"] = "eager"
model = AutoModelForCausalLM.from_pretrained(model_dir, **options)
model.eval()
losses = []
with torch.no_grad():
    for w in range(windows):
        window = torch.tensor(ids[w * (seq + 1) : (w + 1) * (seq + 1)]).unsqueeze(0)
        logits = model(window[:, :-1]).logits[0].to(torch.float64)
        losses.append(torch.nn.functional.cross_entropy(logits, window[0, 1:]).item())
print(json.dumps({"transformers": transformers.__version__, "architecture": type(model).__name__, "losses": losses}))
