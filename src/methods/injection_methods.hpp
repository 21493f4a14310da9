// Internal to inject_adapter: what one method's injection rule sees, and the rules
// themselves (one function per method, grouped by family in injection_*.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "peft/peft_model.hpp"

namespace peft::injection {

// A module of the base model with its direct tensors (local name -> tensor), in order.
struct Module {
  std::string path;
  std::vector<std::pair<std::string, Tensor>> params;
};

// How PEFT builds the model around a method's tensors: a tuner wraps targeted modules
// ("base_model.model.<module>.base_layer"), prompt learning adds a prompt encoder next to
// "base_model.<key>", adaption prompt wraps attention modules, X-LoRA wraps a LoRA model.
enum class ModelShape : std::uint8_t { Tuner, PromptLearning, AdaptionPrompt, XLora };

// One targeted module: its tensors and its Python class ("Linear", "Conv2d", ...).
struct Layer {
  const Module* module;
  std::string cls;
  // LoRA target_parameters: the wrapped parameter (PEFT's ParamWrapper), else empty.
  std::string param = {};
  // Where the layer's tensors are keyed when not at module->path (MHA's out_proj).
  std::string path = {};

  const std::string& key_path() const { return path.empty() ? module->path : path; }
  const Tensor& param_tensor(std::string_view name) const;

  const Tensor& weight() const;
  bool is_conv() const;  // torch ConvNd (GPT-2's Conv1D is a transposed Linear)
  // in_features / out_features as the PEFT layer reads them from its base layer.
  std::uint64_t in_features() const;
  std::uint64_t out_features() const;
  // Unsupported naming the method, for classes PEFT's method does not wrap.
  [[noreturn]] void refuse(std::string_view method) const;
  // refuse() unless the class is one of `classes`.
  void require(std::string_view method, std::initializer_list<std::string_view> classes) const;
};

// The dtype PEFT leaves adapter tensors in: created float32, moved to the base weight's
// dtype when that is floating, then (autocast_adapter_dtype) float16/bfloat16 upcast.
struct SlotMaker {
  bool autocast;
  DType dtype(const Tensor& like) const;
  Tensor zeros(const Tensor& like, Shape shape) const;
  Tensor filled(const Tensor& like, Shape shape, float value) const;
  Tensor ones(const Tensor& like, Shape shape) const { return filled(like, std::move(shape), 1); }
  Tensor from_floats(const Tensor& like, Shape shape, std::span<const float> values) const;
};

// What every rule shares for one injection.
struct Context {
  const PeftConfig& config;
  const std::string& adapter;
  SlotMaker make;
  // Model-level tensors some methods share between layers (VeRA's vera_A, ...), by
  // attribute name; written after the model as "base_model.<name>.<adapter>".
  StateDict shared;
};

// Writes "base_model.model.<module>.<part>.<adapter><suffix>".
void put(StateDict& out, const Layer& layer, const Context& ctx, std::string_view part,
         Tensor tensor, std::string_view suffix = "");

// Per-method rules: the tensors PEFT registers on `layer`, in its order. For prompt
// learning `layer` is the word embeddings and the tensors are the prompt encoder's; for
// adaption prompt it is the attention module (its tensors named relative to it).
using SlotFn = void (*)(const Layer& layer, const Context& ctx, StateDict& out);
// Whether the method wraps a module its config targets (nullptr: every one).
using WrapsFn = bool (*)(const Layer& layer);
// Rules that create model-level tensors before any layer (PEFT's _pre_injection_hook).
using SharedFn = StateDict (*)(const std::vector<Layer>& targets, const Context& ctx);

void lora_slots(const Layer&, const Context&, StateDict&);
void adalora_slots(const Layer&, const Context&, StateDict&);
void loha_slots(const Layer&, const Context&, StateDict&);
void lokr_slots(const Layer&, const Context&, StateDict&);
void ia3_slots(const Layer&, const Context&, StateDict&);

void oft_slots(const Layer&, const Context&, StateDict&);
void boft_slots(const Layer&, const Context&, StateDict&);
void hra_slots(const Layer&, const Context&, StateDict&);
void bone_slots(const Layer&, const Context&, StateDict&);
void miss_slots(const Layer&, const Context&, StateDict&);

void fourierft_slots(const Layer&, const Context&, StateDict&);
void waveft_slots(const Layer&, const Context&, StateDict&);
void c3a_slots(const Layer&, const Context&, StateDict&);
void shira_slots(const Layer&, const Context&, StateDict&);
void road_slots(const Layer&, const Context&, StateDict&);
void delora_slots(const Layer&, const Context&, StateDict&);
void poly_slots(const Layer&, const Context&, StateDict&);
void ln_tuning_slots(const Layer&, const Context&, StateDict&);
void trainable_tokens_slots(const Layer&, const Context&, StateDict&);
// The trainable-token delta PEFT starts from: the embedding rows of `tokens`.
Tensor token_rows(const Layer& layer, const Context& ctx, const std::vector<std::int64_t>& tokens);
void osf_slots(const Layer&, const Context&, StateDict&);
bool osf_wraps(const Layer&);

void prompt_tuning_slots(const Layer&, const Context&, StateDict&);
void multitask_prompt_tuning_slots(const Layer&, const Context&, StateDict&);
void p_tuning_slots(const Layer&, const Context&, StateDict&);
void prefix_tuning_slots(const Layer&, const Context&, StateDict&);
void cpt_slots(const Layer&, const Context&, StateDict&);
void adaption_prompt_slots(const Layer&, const Context&, StateDict&);

void vera_slots(const Layer&, const Context&, StateDict&);
StateDict vera_shared(const std::vector<Layer>&, const Context&);
void randlora_slots(const Layer&, const Context&, StateDict&);
StateDict randlora_shared(const std::vector<Layer>&, const Context&);
void vblora_slots(const Layer&, const Context&, StateDict&);
StateDict vblora_shared(const std::vector<Layer>&, const Context&);

}  // namespace peft::injection
