// make_llama_checkpoint OUT_DIR [--hidden N] [--intermediate N] [--layers N] [--vocab N]
//                              [--shards N] [--rank R]
// Writes OUT_DIR/base (a Llama-shaped BF16 checkpoint) and OUT_DIR/adapter (an all-linear
// LoRA with F32 factors) for bench/merge_vs_copy.sh. Defaults: the 0.9 GB shape of issue 16.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "llama_checkpoint.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: make_llama_checkpoint OUT_DIR [--hidden N] [--intermediate N] "
                 "[--layers N] [--vocab N] [--shards N] [--rank R]\n");
    return 2;
  }
  peft::bench::LlamaShape shape;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const unsigned long long value = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--hidden") {
      shape.hidden = value;
    } else if (flag == "--intermediate") {
      shape.intermediate = value;
    } else if (flag == "--layers") {
      shape.layers = static_cast<int>(value);
    } else if (flag == "--vocab") {
      shape.vocab = value;
    } else if (flag == "--shards") {
      shape.shards = value;
    } else if (flag == "--rank") {
      shape.rank = static_cast<int>(value);
    } else {
      std::fprintf(stderr, "make_llama_checkpoint: unknown option %s\n", flag.c_str());
      return 2;
    }
  }
  peft::bench::write_llama_checkpoint(argv[1], shape);
  return 0;
}
