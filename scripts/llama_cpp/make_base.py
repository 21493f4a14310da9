# Tiny random base models with a tiny sentencepiece tokenizer, for
# scripts/llama-cpp-check.sh (runs inside the Debian sid chroot, in the current folder):
# make_base.py ARCH writes base_ARCH/ (config.json, model.safetensors, tokenizer) and, once,
# eval.txt. ARCH: llama (untied embeddings), mistral, qwen2 (q/k/v biases), qwen3 (q/k
# norms), gemma, gemma2, gemma3 (tied embeddings, scaled input), phi3 (fused qkv_proj and
# gate_up_proj).
import json
import os
import random
import shutil
import sys

import sentencepiece as spm
import torch
import transformers

arch = sys.argv[1]
random.seed(0)
words = "the quick brown fox jumps over lazy dog a model adapter learns small weights from data and text".split()
if not os.path.exists("tok.model"):
    with open("corpus.txt", "w") as f:
        for i in range(3000):
            f.write(" ".join(random.choice(words) for _ in range(12)) + "\n")
    # llama.cpp's Phi-3 vocabulary loader looks these tokens up (it fails without them).
    chat_tokens = ["<|endoftext|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|placeholder1|>"]
    spm.SentencePieceTrainer.train(input="corpus.txt", model_prefix="tok", vocab_size=300, model_type="bpe",
                                   byte_fallback=True, hard_vocab_limit=False, bos_id=1, eos_id=2, unk_id=0,
                                   pad_id=-1, user_defined_symbols=chat_tokens)
    with open("eval.txt", "w") as f:
        for i in range(200):
            f.write(" ".join(random.choice(words) for _ in range(12)) + "\n")
vocab = spm.SentencePieceProcessor(model_file="tok.model").get_piece_size()
common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
classes = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(tie_word_embeddings=False)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(tie_word_embeddings=False)),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(tie_word_embeddings=False, head_dim=16)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(tie_word_embeddings=False, sliding_window=None)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(head_dim=16, pad_token_id=0)),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(head_dim=16, pad_token_id=0)),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(head_dim=16, pad_token_id=0)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(tie_word_embeddings=False, pad_token_id=0,
                                                   num_key_value_heads=4)),
}
config_class, model_class, extra = classes[arch]
torch.manual_seed(0)
cfg = getattr(transformers, config_class)(**{**common, **extra})
model = getattr(transformers, model_class)(cfg)
out = f"base_{arch}"
model.save_pretrained(out, safe_serialization=True)
shutil.copy("tok.model", f"{out}/tokenizer.model")
json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
           "model_max_length": 256, "tokenizer_class": "LlamaTokenizer"}, open(f"{out}/tokenizer_config.json", "w"))
print("ok", arch, vocab)
