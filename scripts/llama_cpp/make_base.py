# A tiny random Llama base model with a tiny sentencepiece tokenizer, for
# scripts/llama-cpp-check.sh (runs inside the Debian sid chroot, in the current folder):
# writes base/ (config.json, model.safetensors, tokenizer) and eval.txt.
import os, random, json
import sentencepiece as spm
random.seed(0)
words = "the quick brown fox jumps over lazy dog a model adapter learns small weights from data and text".split()
with open("corpus.txt", "w") as f:
    for i in range(3000):
        f.write(" ".join(random.choice(words) for _ in range(12)) + "\n")
spm.SentencePieceTrainer.train(input="corpus.txt", model_prefix="tok", vocab_size=300, model_type="bpe", byte_fallback=True,
                               hard_vocab_limit=False, bos_id=1, eos_id=2, unk_id=0, pad_id=-1)
import torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=spm.SentencePieceProcessor(model_file="tok.model").get_piece_size(),
                  hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False)
model = LlamaForCausalLM(cfg)
model.save_pretrained("base", safe_serialization=True)
import shutil
shutil.copy("tok.model", "base/tokenizer.model")
json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
           "model_max_length": 256, "tokenizer_class": "LlamaTokenizer"}, open("base/tokenizer_config.json", "w"))
with open("eval.txt", "w") as f:
    for i in range(200):
        f.write(" ".join(random.choice(words) for _ in range(12)) + "\n")
print("ok", cfg.vocab_size)
