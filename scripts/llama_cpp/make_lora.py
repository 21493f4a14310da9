# A LoRA adapter for base_ARCH of make_base.py, with factors large enough to move
# perplexity: make_lora.py ARCH MODE writes lora_ARCH_MODE/, MODE one of
#   plain     every attention and MLP projection, lora_alpha 16, r 8
#   rslora    the same with use_rslora (scale alpha / sqrt(r))
#   patterns  the first projection at rank 4 through rank_pattern, the third at alpha 32
#             through alpha_pattern
#   embed     the input embedding, and the output embedding when it is not tied
# Shapes come from the base's own weights.
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

arch, mode = sys.argv[1], sys.argv[2]
base, name = f"base_{arch}", f"lora_{arch}_{mode}"
projections = {
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}.get(arch, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
targets = ["embed_tokens", "lm_head"] if mode == "embed" else projections
r = 8
rank_pattern = {projections[0]: 4} if mode == "patterns" else {}
alpha_pattern = {projections[2]: 32} if mode == "patterns" else {}
torch.manual_seed(1)
tensors = {}
with safe_open(f"{base}/model.safetensors", "pt") as f:
    for key in f.keys():
        module = key[: -len(".weight")]
        leaf = module.rsplit(".", 1)[-1]
        if not key.endswith(".weight") or leaf not in targets:
            continue
        out, inp = f.get_slice(key).get_shape()
        rank = rank_pattern.get(leaf, r)
        prefix = f"base_model.model.{module}"
        if leaf == "embed_tokens":  # nn.Embedding: A is [r, vocab], B is [dim, r]
            tensors[prefix + ".lora_embedding_A"] = torch.randn(rank, out) * 0.3
            tensors[prefix + ".lora_embedding_B"] = torch.randn(inp, rank) * 0.3
        else:
            tensors[prefix + ".lora_A.weight"] = torch.randn(rank, inp) * 0.3
            tensors[prefix + ".lora_B.weight"] = torch.randn(out, rank) * 0.3
assert tensors, f"no {targets} in {base}"
os.makedirs(name, exist_ok=True)
save_file(tensors, f"{name}/adapter_model.safetensors", metadata={"format": "pt"})
config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 16,
          "use_rslora": mode == "rslora", "target_modules": targets,
          "base_model_name_or_path": base, "bias": "none", "fan_in_fan_out": False,
          "lora_dropout": 0.0, "init_lora_weights": True, "peft_version": "0.18.0",
          "rank_pattern": rank_pattern, "alpha_pattern": alpha_pattern}
with open(f"{name}/adapter_config.json", "w") as f:
    json.dump(config, f)
print("ok", name, len(tensors))
