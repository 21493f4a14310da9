# A LoRA adapter for the base of make_base.py on all seven projections, with factors large
# enough to move perplexity: make_lora.py FOLDER MODE, MODE one of
#   plain     lora_alpha 16, r 8
#   rslora    the same with use_rslora (scale alpha / sqrt(r))
#   patterns  q_proj at rank 4 through rank_pattern, v_proj at alpha 32 through alpha_pattern
import json
import os
import sys

import torch
from safetensors.torch import save_file

name, mode = sys.argv[1], sys.argv[2]
torch.manual_seed(1)
r, H, I, kv = 8, 64, 128, 32
shapes = {"self_attn.q_proj": (H, H), "self_attn.k_proj": (kv, H), "self_attn.v_proj": (kv, H),
          "self_attn.o_proj": (H, H), "mlp.gate_proj": (I, H), "mlp.up_proj": (I, H),
          "mlp.down_proj": (H, I)}
tensors = {}
for layer in range(2):
    for module, (out, inp) in shapes.items():
        rank = 4 if mode == "patterns" and module.endswith("q_proj") else r
        key = f"base_model.model.model.layers.{layer}.{module}"
        tensors[key + ".lora_A.weight"] = torch.randn(rank, inp) * 0.3
        tensors[key + ".lora_B.weight"] = torch.randn(out, rank) * 0.3
os.makedirs(name, exist_ok=True)
save_file(tensors, f"{name}/adapter_model.safetensors", metadata={"format": "pt"})
config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 16,
          "use_rslora": mode == "rslora",
          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                             "down_proj"],
          "base_model_name_or_path": "base", "bias": "none", "fan_in_fan_out": False,
          "lora_dropout": 0.0, "init_lora_weights": True, "peft_version": "0.18.0",
          "rank_pattern": {"q_proj": 4} if mode == "patterns" else {},
          "alpha_pattern": {"v_proj": 32} if mode == "patterns" else {}}
with open(f"{name}/adapter_config.json", "w") as f:
    json.dump(config, f)
