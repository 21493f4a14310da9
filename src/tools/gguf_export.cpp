// export_gguf: a PEFT LoRA adapter as llama.cpp's GGUF LoRA file. One row per
// architecture below; the GGUF bytes come from formats/gguf.
#include "peft/gguf_export.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "formats/atomic_file.hpp"
#include "formats/gguf.hpp"
#include "formats/json_file.hpp"
#include "formats/mapped_file.hpp"
#include "formats/pipelined_writer.hpp"
#include "formats/scratch_buffer.hpp"
#include "peft/error.hpp"
#include "peft/module_match.hpp"

namespace peft {
namespace {

namespace fs = std::filesystem;
using formats::GgmlType;

constexpr std::string_view kMergeInstead =
    "llama.cpp's LoRA format holds only plain LoRA factors; merge the adapter into the base "
    "model instead (peftcpp merge) and convert the merged model";

// A Hugging Face module name (after "model.layers.N.") -> llama.cpp's tensor name.
struct ModuleName {
  std::string_view hf;
  std::string_view gguf;
};

constexpr std::array kLlamaModules = {
    ModuleName{"self_attn.q_proj", "attn_q"}, ModuleName{"self_attn.k_proj", "attn_k"},
    ModuleName{"self_attn.v_proj", "attn_v"}, ModuleName{"self_attn.o_proj", "attn_output"},
    ModuleName{"mlp.gate_proj", "ffn_gate"},  ModuleName{"mlp.up_proj", "ffn_up"},
    ModuleName{"mlp.down_proj", "ffn_down"},
};
constexpr std::array kPhi3Modules = {
    ModuleName{"self_attn.qkv_proj", "attn_qkv"},
    ModuleName{"self_attn.o_proj", "attn_output"},
    ModuleName{"mlp.gate_up_proj", "ffn_up"},
    ModuleName{"mlp.down_proj", "ffn_down"},
};

// One row per architecture (convert_hf_to_gguf.py's model classes).
struct Architecture {
  std::string_view hf_class;
  std::string_view gguf_name;
  std::span<const ModuleName> modules;
  bool permute_qk;       // LlamaModel permutes q/k rows for its rotary layout
  bool ties_by_default;  // tie_word_embeddings when config.json does not say
};

constexpr std::array kArchitectures = {
    Architecture{"LlamaForCausalLM", "llama", kLlamaModules, true, false},
    Architecture{"MistralForCausalLM", "llama", kLlamaModules, true, false},
    Architecture{"Qwen2ForCausalLM", "qwen2", kLlamaModules, false, false},
    Architecture{"Qwen3ForCausalLM", "qwen3", kLlamaModules, false, false},
    Architecture{"GemmaForCausalLM", "gemma", kLlamaModules, false, true},
    Architecture{"Gemma2ForCausalLM", "gemma2", kLlamaModules, false, true},
    Architecture{"Gemma3ForCausalLM", "gemma3", kLlamaModules, false, true},
    Architecture{"Phi3ForCausalLM", "phi3", kPhi3Modules, false, false},
};

struct BaseFacts {
  const Architecture* arch = nullptr;
  std::int64_t heads = 0;
  std::int64_t kv_heads = 0;
  bool tied = false;
};

std::int64_t positive_int(const nlohmann::json& config, const char* field, const fs::path& file) {
  const auto it = config.find(field);
  if (it == config.end() || !it->is_number_integer() || it->get<std::int64_t>() <= 0) {
    throw Error(ErrorCode::InvalidConfigValue, file.string(),
                fmt::format("'{}' must be a positive integer", field));
  }
  return it->get<std::int64_t>();
}

BaseFacts read_base(const std::string& base, const AdapterLocation& location) {
  const fs::path file = resolve_adapter_file(base, "config.json", location);
  const nlohmann::json config = formats::read_json_file(file);
  const auto archs = config.find("architectures");
  if (!config.is_object() || archs == config.end() || !archs->is_array() || archs->empty() ||
      !(*archs)[0].is_string()) {
    throw Error(ErrorCode::InvalidConfigValue, file.string(),
                "config.json names no architecture (\"architectures\": [\"...ForCausalLM\"])");
  }
  const auto& name = (*archs)[0].get_ref<const std::string&>();
  BaseFacts facts;
  for (const Architecture& arch : kArchitectures) {
    if (arch.hf_class == name) facts.arch = &arch;
  }
  if (facts.arch == nullptr) {
    std::vector<std::string_view> known;
    known.reserve(kArchitectures.size());
    for (const Architecture& arch : kArchitectures) known.push_back(arch.hf_class);
    throw Error(ErrorCode::Unsupported, file.string(),
                fmt::format("architecture {} is not supported for GGUF export (supported: {})",
                            name, fmt::join(known, ", ")));
  }
  facts.heads = positive_int(config, "num_attention_heads", file);
  facts.kv_heads =
      config.contains("num_key_value_heads") && !config["num_key_value_heads"].is_null()
          ? positive_int(config, "num_key_value_heads", file)
          : facts.heads;
  const auto tie = config.find("tie_word_embeddings");
  facts.tied =
      tie != config.end() && tie->is_boolean() ? tie->get<bool>() : facts.arch->ties_by_default;
  return facts;
}

void refuse(const PeftConfig& config, std::string_view why) {
  throw Error(ErrorCode::Unsupported, config.source(), fmt::format("{}: {}", why, kMergeInstead));
}

void check_expressible(const PeftConfig& config) {
  if (config.peft_type() != PeftType::LORA) {
    refuse(config, fmt::format("{} adapters cannot be written as GGUF LoRA",
                               to_string(config.peft_type())));
  }
  if (config.use_dora()) refuse(config, "DoRA (use_dora) rescales weights by a learned magnitude");
  if (config.bias() != "none" || config.lora_bias()) refuse(config, "the adapter trains biases");
  if (const auto saved = config.modules_to_save(); saved && !saved->empty()) {
    refuse(config, "modules_to_save holds whole trained modules");
  }
  if (config.trainable_token_indices()) refuse(config, "trainable_token_indices trains token rows");
  if (const auto params = config.target_parameters(); params && !params->empty()) {
    refuse(config, "target_parameters adapts parameters, not modules");
  }
  if (config.layer_replication()) refuse(config, "layer_replication copies layers");
  if (config.fan_in_fan_out()) refuse(config, "fan_in_fan_out (GPT-2 Conv1D) layers");
}

// The llama.cpp name of a PEFT module path ("model.layers.3.self_attn.q_proj").
struct Target {
  std::string gguf;  // "blk.3.attn_q.weight"
  bool embedding = false;
  bool output = false;
  std::string_view hf_module;  // "self_attn.q_proj" (empty for embeddings/output)
};

std::optional<Target> gguf_target(const Architecture& arch, std::string_view module) {
  if (module == "model.embed_tokens") return Target{"token_embd.weight", true, false, {}};
  if (module == "lm_head") return Target{"output.weight", false, true, {}};
  constexpr std::string_view kLayers = "model.layers.";
  if (!module.starts_with(kLayers)) return std::nullopt;
  const std::string_view rest = module.substr(kLayers.size());
  const auto dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  const std::string_view index = rest.substr(0, dot);
  if (index.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  const std::string_view inner = rest.substr(dot + 1);
  for (const ModuleName& name : arch.modules) {
    if (name.hf == inner)
      return Target{fmt::format("blk.{}.{}.weight", index, name.gguf), false, false, name.hf};
  }
  return std::nullopt;
}

// How a written tensor's values come from its source's, applied while writing (no
// intermediate copies): a folded scale, llama.cpp's rotary row permutation of q/k, or a
// transposition (token_embd's lora_a).
struct Layout {
  double fold = 1.0;
  std::size_t rows = 0, cols = 0;  // of the source
  std::size_t heads = 0;           // permute rows within `heads` groups (0: no)
  bool transpose = false;

  bool moves() const { return heads != 0 || transpose; }
  bool identity() const { return fold == 1.0 && !moves(); }
  // The source index of written element `i`.
  std::size_t source(std::size_t i) const {
    if (transpose) return (i % rows) * cols + i / rows;
    return source_row(i / cols) * cols + i % cols;
  }
  // The source row of written row `row` (without a transposition, whole rows move):
  // convert_hf_to_gguf.py's LlamaModel.permute writes at row h*2*half + 2j + t the source
  // row h*2*half + t*half + j.
  std::size_t source_row(std::size_t row) const {
    if (heads == 0) return row;
    const std::size_t half = rows / heads / 2;
    const std::size_t h = row / (2 * half), rem = row % (2 * half);
    return h * 2 * half + (rem % 2) * half + rem / 2;
  }
};

Layout permuted(std::size_t rows, std::size_t cols, std::int64_t heads, const std::string& what) {
  const auto n = static_cast<std::size_t>(heads);
  if (n == 0 || rows % (2 * n) != 0) {
    throw Error(ErrorCode::ShapeMismatch, what,
                fmt::format("{} rows cannot be split into {} heads of two rotary halves", rows, n));
  }
  return Layout{1.0, rows, cols, n, false};
}

// One tensor to write: its header, and where its bytes come from — the adapter's tensor
// and its layout — so that they are produced while writing, one tensor at a time: borrowed from the
// adapter file when nothing changes (f32 -> f32), else converted into a buffer reused across
// tensors. Q8_0 only where a row fills whole blocks; other tensors fall back to F16, as small ranks
// do for lora_b.
struct Encoded {
  formats::GgufTensorHeader header;
  const Tensor* source = nullptr;
  Layout layout;
};

DType dtype_of(GgmlType type) {
  return type == GgmlType::F32 ? DType::F32 : type == GgmlType::F16 ? DType::F16 : DType::BF16;
}

GgmlType ggml_of(GgufOutType out) {
  switch (out) {
    case GgufOutType::F32:
      return GgmlType::F32;
    case GgufOutType::F16:
      return GgmlType::F16;
    case GgufOutType::BF16:
      return GgmlType::BF16;
    case GgufOutType::Q8_0:
      return GgmlType::Q8_0;
  }
  return GgmlType::F32;
}

Encoded encode(std::string name, const Tensor& source, Layout layout, std::vector<std::uint64_t> ne,
               GgufOutType out) {
  GgmlType type = ggml_of(out);
  if (type == GgmlType::Q8_0 && ne[0] % formats::kQ8BlockSize != 0) type = GgmlType::F16;
  return Encoded{{std::move(name), type, std::move(ne)}, &source, layout};
}

// `count` floats read by `at(i)` stored as `dtype` (F32, F16 or BF16) at `dst`. One loop per
// dtype, so that the compiler can vectorise the common one (an F32 adapter to BF16).
template <typename At>
void store_floats(std::size_t count, At at, DType dtype, std::byte* dst) {
  if (dtype == DType::F32) {
    for (std::size_t i = 0; i < count; ++i) {
      const float v = at(i);
      std::memcpy(dst + 4 * i, &v, 4);
    }
    return;
  }
  const auto store = [&](auto convert) {
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint16_t h = convert(at(i));
      std::memcpy(dst + 2 * i, &h, 2);
    }
  };
  if (dtype == DType::F16) {
    store([](float v) { return f32_to_f16(v); });
  } else {
    store([](float v) { return f32_to_bf16(v); });
  }
}

// `count` float32 values at `src` (maybe unaligned), times `fold` in double with one rounding
// to float (unless 1), stored as `dtype` at `dst`.
void store_run(const std::byte* src, std::size_t count, double fold, DType dtype, std::byte* dst) {
  const auto plain = [src](std::size_t i) {
    float v;
    std::memcpy(&v, src + 4 * i, 4);
    return v;
  };
  if (fold == 1.0) {
    store_floats(count, plain, dtype, dst);
  } else {
    store_floats(
        count,
        [&](std::size_t i) { return static_cast<float>(static_cast<double>(plain(i)) * fold); },
        dtype, dst);
  }
}

// The source tensor's bytes. Bytes that lie in a mapped file are read with pread into
// `buffer`: one pass over mapped page-cache pages costs several times a read() into a
// small reused buffer on this project's VMs (docs/gguf.md, "Performance").
std::span<const std::byte> source_bytes(const Tensor& source, formats::ScratchBuffer& buffer) {
  const std::span<std::byte> into = buffer.take(source.nbytes());
  return formats::read_mapped(source.bytes(), into) ? std::span<const std::byte>(into)
                                                    : source.bytes();
}

bool passes_through(const Encoded& e) {
  return e.header.type != GgmlType::Q8_0 && e.layout.identity() &&
         e.source->dtype() == dtype_of(e.header.type);
}

// Queues one tensor's bytes and its padding; returns how many bytes it has. Bytes that pass
// through unchanged are read straight into the writer's next buffer; the others are read into
// `input` and converted (dtype, permutation, scale folding, transposition) into it. The
// writer's thread writes them while this one reads the next tensor (faster here than one
// copy_file_range per tensor, which copies on the same thread).
std::uint64_t write_tensor(formats::PipelinedWriter& writer, const Encoded& e,
                           formats::ScratchBuffer& input) {
  const Tensor& original = *e.source;
  if (passes_through(e)) {
    const std::span<const std::byte> bytes = original.bytes();
    const auto pad = formats::gguf_padding(bytes.size());
    const std::span<std::byte> out = writer.buffer(bytes.size());
    if (formats::read_mapped(bytes, out)) {
      writer.submit(out.size(), pad);
    } else {
      writer.submit_external(bytes, pad);
    }
    return bytes.size();
  }
  const GgmlType type = e.header.type;
  if (type != GgmlType::Q8_0 && !e.layout.moves() && original.dtype() == DType::F32) {
    // Nothing moves: read and convert in chunks that are still in cache when converted.
    constexpr std::size_t kChunk = std::size_t{64} << 10;  // elements
    const DType dtype = dtype_of(type);
    const std::size_t size = dtype_size(dtype), count = original.numel();
    const std::span<const std::byte> bytes = original.bytes();
    const std::span<std::byte> out = writer.buffer(count * size);
    const std::span<std::byte> chunk = input.take(std::min(count, kChunk) * 4);
    for (std::size_t i = 0; i < count; i += kChunk) {
      const std::size_t n = std::min(kChunk, count - i);
      const std::span<const std::byte> part = bytes.subspan(4 * i, 4 * n);
      const std::byte* from = formats::read_mapped(part, chunk) ? chunk.data() : part.data();
      store_run(from, n, e.layout.fold, dtype, out.data() + i * size);
    }
    writer.submit(out.size(), formats::gguf_padding(out.size()));
    return out.size();
  }
  const Tensor source =
      Tensor::view(original.dtype(), original.shape(), source_bytes(original, input), nullptr);
  // Read as float32 in place (maybe unaligned): the source's own bytes when it is F32.
  const Tensor f32 = source.to(DType::F32);
  const std::byte* src = f32.bytes().data();
  const Layout& layout = e.layout;
  const std::size_t count = source.numel();
  const auto moved = [&](std::size_t i) {
    float v;
    std::memcpy(&v, src + 4 * (layout.moves() ? layout.source(i) : i), 4);
    return layout.fold == 1.0 ? v : static_cast<float>(static_cast<double>(v) * layout.fold);
  };
  std::span<std::byte> out;
  if (type == GgmlType::Q8_0) {
    std::vector<float> values(count);
    for (std::size_t i = 0; i < count; ++i) values[i] = moved(i);
    const std::vector<std::byte> quantized = formats::quantize_q8_0(values);
    out = writer.buffer(quantized.size());
    std::memcpy(out.data(), quantized.data(), quantized.size());
  } else if (layout.transpose) {
    out = writer.buffer(count * dtype_size(dtype_of(type)));
    store_floats(count, moved, dtype_of(type), out.data());
  } else {
    // Whole rows move (LlamaModel.permute) or nothing does: vectorised runs, one per row.
    const DType dtype = dtype_of(type);
    const std::size_t size = dtype_size(dtype);
    out = writer.buffer(count * size);
    const std::size_t run = layout.heads != 0 ? layout.cols : count;
    for (std::size_t row = 0; row * run < count; ++row) {
      store_run(src + 4 * layout.source_row(row) * run, run, layout.fold, dtype,
                out.data() + row * run * size);
    }
  }
  writer.submit(out.size(), formats::gguf_padding(out.size()));
  return out.size();
}

struct Factors {
  const Tensor* a = nullptr;
  const Tensor* b = nullptr;
};

std::size_t dim(const Tensor& t, std::size_t i) {
  return static_cast<std::size_t>(t.shape()[i]);
}

}  // namespace

std::optional<GgufOutType> gguf_out_type_from_name(std::string_view name) {
  if (name == "q8_0" || name == "Q8_0") return GgufOutType::Q8_0;
  const auto dtype = floating_dtype_from_alias(name);
  if (!dtype) return std::nullopt;
  switch (*dtype) {
    case DType::F32:
      return GgufOutType::F32;
    case DType::F16:
      return GgufOutType::F16;
    case DType::BF16:
      return GgufOutType::BF16;
    default:
      return std::nullopt;
  }
}

std::vector<std::pair<std::string, std::string>> gguf_architectures() {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(kArchitectures.size());
  for (const Architecture& arch : kArchitectures) out.emplace_back(arch.hf_class, arch.gguf_name);
  return out;
}

GgufExportResult export_gguf(const std::string& adapter, const std::string& base,
                             const fs::path& out, const GgufExportOptions& options) {
  return annotate_errors(adapter, [&]() -> GgufExportResult {
    std::error_code ec;
    if (!options.overwrite && fs::exists(out, ec)) {
      throw Error(ErrorCode::InvalidArgument, out.string(),
                  "the output exists (--force replaces it)");
    }
    const PeftConfig config = load_adapter_config(adapter, options.adapter_location);
    check_expressible(config);
    const BaseFacts facts = read_base(base, options.base_location);
    LoadWeightsOptions load;
    load.location = options.adapter_location;
    const StateDict weights = load_peft_weights(adapter, load);

    // Pair the factors by module, in the order of the file.
    std::vector<std::string> order;
    std::map<std::string, Factors> modules;
    constexpr std::string_view kRoot = "base_model.model.";
    for (const auto& [key, tensor] : weights) {
      std::string_view name = key;
      if (name.starts_with(kRoot)) name.remove_prefix(kRoot.size());
      static constexpr std::array<std::pair<std::string_view, bool>, 4> kParts = {
          {{".lora_A.weight", true},
           {".lora_B.weight", false},
           {".lora_embedding_A", true},
           {".lora_embedding_B", false}}};
      bool matched = false;
      for (const auto& [suffix, is_a] : kParts) {
        if (!name.ends_with(suffix)) continue;
        const std::string module(name.substr(0, name.size() - suffix.size()));
        auto [it, inserted] = modules.try_emplace(module);
        if (inserted) order.push_back(module);
        (is_a ? it->second.a : it->second.b) = &tensor;
        matched = true;
      }
      if (matched || name.ends_with(".base_layer.weight")) continue;  // full base copies
      if (name.ends_with(".weight") &&
          (name.starts_with("model.embed_tokens") || name == "lm_head.weight")) {
        continue;  // embedding layers saved with save_embedding_layers: not adapter tensors
      }
      throw Error(ErrorCode::Unsupported, key,
                  fmt::format("tensor '{}' is not a LoRA factor: {}", key, kMergeInstead));
    }
    if (order.empty()) {
      throw Error(ErrorCode::MissingKey, adapter, "the adapter holds no LoRA factors");
    }

    const float alpha = static_cast<float>(config.lora_alpha());
    std::vector<Encoded> encoded;
    for (const std::string& module : order) {
      const Factors& f = modules.at(module);
      if (f.a == nullptr || f.b == nullptr) {
        throw Error(ErrorCode::MissingKey, module,
                    fmt::format("module '{}' has only one of its two LoRA factors", module));
      }
      const auto target = gguf_target(*facts.arch, module);
      if (!target) {
        throw Error(ErrorCode::Unsupported, module,
                    fmt::format("module '{}' has no tensor in llama.cpp's {} model", module,
                                facts.arch->gguf_name));
      }
      if (target->output && facts.tied) {
        throw Error(ErrorCode::Unsupported, module,
                    "lm_head is tied to the token embeddings in this base model, so llama.cpp "
                    "has no separate output tensor to adapt");
      }
      // With tied embeddings llama.cpp also applies a token_embd LoRA to the output
      // projection, with the row-lookup layout a matrix product cannot take (llama.cpp
      // 0.7.0 aborts on such an adapter), while PEFT changes the embedding only.
      if (target->embedding && facts.tied) {
        throw Error(ErrorCode::Unsupported, module,
                    "the token embeddings are tied to the output in this base model: llama.cpp "
                    "cannot apply an embedding LoRA there (merge it instead: peftcpp merge)");
      }
      if (f.a->shape().size() != 2 || f.b->shape().size() != 2) {
        throw Error(ErrorCode::ShapeMismatch, module,
                    "LoRA factors must be 2-D (Conv layers are not in llama.cpp)");
      }
      // PyTorch shapes: Linear A [r, in], B [out, r]; Embedding A [r, vocab], B [dim, r].
      const std::size_t r = dim(*f.a, 0);
      if (dim(*f.b, 1) != r) {
        throw Error(ErrorCode::ShapeMismatch, module,
                    fmt::format("lora_A has rank {} but lora_B {}", r, dim(*f.b, 1)));
      }
      const double peft_rank = rank_for(config, module);
      const double peft_scale =
          alpha_for(config, module) / (config.use_rslora() ? std::sqrt(peft_rank) : peft_rank);
      const double llama_scale = alpha != 0.0F ? alpha / static_cast<double>(r) : 1.0;
      const double fold = peft_scale / llama_scale;

      // lora_b changes when a scale is folded in or llama.cpp permutes its rows.
      const bool permute = facts.arch->permute_qk && (target->hf_module == "self_attn.q_proj" ||
                                                      target->hf_module == "self_attn.k_proj");
      Layout b;
      if (permute) {
        const bool q = target->hf_module == "self_attn.q_proj";
        b = permuted(dim(*f.b, 0), r, q ? facts.heads : facts.kv_heads, module);
      }
      b.fold = fold;
      // GGUF ne reverses PyTorch's shape. Linear: lora_a = A (ne {in, r}), lora_b = B
      // (ne {r, out}). token_embd is applied by row lookup: lora_a = Aᵀ (ne {r, vocab}),
      // lora_b = B (ne {r, dim}).
      Layout a;
      std::vector<std::uint64_t> a_ne = {dim(*f.a, 1), r};
      if (target->embedding) {
        a = Layout{1.0, r, dim(*f.a, 1), 0, true};
        a_ne = {r, dim(*f.a, 1)};
      }
      encoded.push_back(
          encode(target->gguf + ".lora_a", *f.a, a, std::move(a_ne), options.out_type));
      encoded.push_back(
          encode(target->gguf + ".lora_b", *f.b, b, {r, dim(*f.b, 0)}, options.out_type));
    }

    std::vector<formats::GgufTensorHeader> headers;
    headers.reserve(encoded.size());
    for (const Encoded& e : encoded) headers.push_back(e.header);
    using formats::GgufValueType;
    const std::vector<formats::GgufKeyValue> metadata = {
        {"general.architecture", GgufValueType::String, std::string(facts.arch->gguf_name)},
        {"general.type", GgufValueType::String, "adapter"},
        {"adapter.type", GgufValueType::String, "lora"},
        {"adapter.lora.alpha", GgufValueType::Float32, alpha},
    };
    const std::vector<std::byte> header = formats::serialize_gguf_header(metadata, headers);

    formats::AtomicFile file(out);
    file.write(header);
    std::uint64_t size = header.size();
    std::size_t largest = 0;  // buffers sized once: each growth would fault in fresh pages
    for (const Encoded& e : encoded) largest = std::max(largest, e.source->nbytes());
    formats::ScratchBuffer input(largest);
    formats::PipelinedWriter writer(file, largest * 2);  // up to f32 from a 16-bit source
    for (const Encoded& e : encoded) {
      const std::uint64_t written = write_tensor(writer, e, input);
      size += written + formats::gguf_padding(written).size();
    }
    writer.finish();
    file.commit();
    return GgufExportResult{std::string(facts.arch->gguf_name), headers.size(), size, alpha};
  });
}

}  // namespace peft
