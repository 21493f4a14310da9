#!/usr/bin/env bash
# Whole-command benchmark of `peftcpp export-gguf` against `cp` of the adapter file.
# Generates (once, in $WORK, default /tmp/peftcpp-gguf-bench) a Llama-7B-shaped LoRA adapter
# (r 16 on the seven projections of 16 layers: 80 MB of F32 factors) and its base config,
# then times each command with hyperfine, $RUNS runs (default 10; page cache warm, output
# removed before each run), and prints the best and median wall times and the ratios to cp.
# usage: bench/gguf_export_vs_copy.sh [path/to/peftcpp]
set -euo pipefail
peftcpp=$(realpath "${1:-build/peftcpp}")
work=${WORK:-/tmp/peftcpp-gguf-bench}
runs=${RUNS:-10}
mkdir -p "$work"
if [ ! -f "$work/adapter/adapter_model.safetensors" ]; then
  python3 - "$work" <<'PY'
import json, os, struct, sys
work = sys.argv[1]
H, I, L, r = 4096, 11008, 16, 16
shapes = {"self_attn.q_proj": (H, H), "self_attn.k_proj": (H, H), "self_attn.v_proj": (H, H),
          "self_attn.o_proj": (H, H), "mlp.gate_proj": (I, H), "mlp.up_proj": (I, H), "mlp.down_proj": (H, I)}
header, offset = {}, 0
for layer in range(L):
    for module, (out, inp) in shapes.items():
        key = f"base_model.model.model.layers.{layer}.{module}"
        for name, shape in ((".lora_A.weight", [r, inp]), (".lora_B.weight", [out, r])):
            size = shape[0] * shape[1] * 4
            header[key + name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
            offset += size
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)
os.makedirs(f"{work}/adapter", exist_ok=True)
block = b"".join(struct.pack("<f", ((i * 2654435761) % 1000) / 1000.0 - 0.5) for i in range(1 << 18))
with open(f"{work}/adapter/adapter_model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    written = 0
    while written < offset:
        chunk = block[: offset - written]
        f.write(chunk)
        written += len(chunk)
json.dump({"peft_type": "LORA", "r": r, "lora_alpha": 32, "target_modules": [m.split(".")[1] for m in shapes],
           "task_type": "CAUSAL_LM", "bias": "none"}, open(f"{work}/adapter/adapter_config.json", "w"))
os.makedirs(f"{work}/base", exist_ok=True)
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
           "num_hidden_layers": L, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
           "tie_word_embeddings": False}, open(f"{work}/base/config.json", "w"))
PY
fi
src="$work/adapter/adapter_model.safetensors"
if ! command -v hyperfine >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null 2>&1 ||
    { echo "gguf_export_vs_copy.sh: hyperfine is needed (Debian package hyperfine)" >&2; exit 1; }
fi
echo "adapter: $(du -m "$src" | cut -f1) MB, $runs runs each (page cache warm, output removed before each)"
hyperfine -N --style none --warmup 2 --runs "$runs" --export-json "$work/times.json" \
  --prepare "rm -f $work/copy.safetensors" -n cp "cp $src $work/copy.safetensors" \
  --prepare "rm -f $work/out.gguf" -n "export-gguf --outtype bf16" \
  "$peftcpp export-gguf $work/adapter --base $work/base --out $work/out.gguf --outtype bf16 -q" \
  --prepare "rm -f $work/out.gguf" -n "export-gguf --outtype f32" \
  "$peftcpp export-gguf $work/adapter --base $work/base --out $work/out.gguf --outtype f32 -q" \
  >/dev/null 2>&1
python3 - "$work/times.json" <<'PY'
import json, statistics, sys
results = json.load(open(sys.argv[1]))["results"]
cp = results[0]
for r in results:
    best, median = min(r["times"]), statistics.median(r["times"])
    ratio = "" if r is cp else f"  ({best / min(cp['times']):.2f}x cp best, {median / statistics.median(cp['times']):.2f}x median)"
    print(f"{r['command']:<28} best {best:.3f} s  median {median:.3f} s{ratio}")
PY
