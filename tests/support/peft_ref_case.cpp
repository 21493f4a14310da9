#include "peft_ref_case.hpp"

#include <algorithm>
#include <fstream>

#include "peft/safetensors.hpp"
#include "test_support.hpp"

namespace peft::testing {
namespace fs = std::filesystem;

namespace {

// get_input_embeddings()/get_output_embeddings() of the transformers architectures the
// fixtures use, as transformers defines them per model type.
struct EmbeddingNames {
  const char* model_type;
  const char* input;
  const char* output;  // nullptr: the model has no output embedding
};
constexpr EmbeddingNames kEmbeddings[] = {
    {"llama", "model.embed_tokens", "lm_head"},
    {"gpt2", "transformer.wte", "lm_head"},
    {"bert", "bert.embeddings.word_embeddings", nullptr},
};

nlohmann::json to_plain(const nlohmann::ordered_json& j) {
  return nlohmann::json::parse(j.dump());
}

}  // namespace

PeftRefCase::PeftRefCase(fs::path dir) : dir_(std::move(dir)), name_(dir_.filename().string()) {
  std::ifstream in(dir_ / "case.json");
  json_ = nlohmann::ordered_json::parse(in);
}

std::vector<std::string> PeftRefCase::strings(const nlohmann::ordered_json& array) {
  std::vector<std::string> out;
  if (array.is_array()) {
    for (const auto& item : array) out.push_back(item.get<std::string>());
  }
  return out;
}

StateDict PeftRefCase::load_ordered(const fs::path& path,
                                    const std::vector<std::string>& order) const {
  const StateDict file = SafetensorsFile::open(path).state_dict();
  if (order.empty()) return file;
  StateDict out;
  for (const auto& key : order) {
    if (const Tensor* tensor = file.find(key)) out.set(key, *tensor);
  }
  for (const auto& [key, tensor] : file) {
    if (!out.contains(key)) out.set(key, tensor);
  }
  return out;
}

StateDict PeftRefCase::load_state(const std::string& file) const {
  const auto& info =
      json_["files"].contains(file) ? json_["files"][file] : nlohmann::ordered_json();
  StateDict state =
      load_ordered(dir_ / file, strings(info.value("keys_in_order", nlohmann::ordered_json())));
  // Tensors PyTorch held as one storage are one storage here too.
  make_writable(state);
  if (info.contains("aliased_in_memory")) {
    for (const auto& group : info["aliased_in_memory"]) {
      const auto keys = strings(group);
      if (keys.empty() || !state.contains(keys[0])) continue;
      const Tensor first = state.at(keys[0]);
      for (std::size_t i = 1; i < keys.size(); ++i) {
        if (state.contains(keys[i])) state.set(keys[i], first);
      }
    }
  }
  return state;
}

ModelFacts PeftRefCase::facts(const std::string& extra_state_file) const {
  ModelFacts facts;
  facts.working_directory = dir_;
  facts.model_class = json_.value("peft_model_class", "PeftModel");
  const auto& transformers = json_["base_model"]["transformers_config"];
  if (transformers.is_object()) {
    facts.has_embedding_accessors = true;
    if (transformers.contains("vocab_size"))
      facts.vocab_size = transformers["vocab_size"].get<std::int64_t>();
    const std::string type = transformers.value("model_type", "");
    for (const auto& names : kEmbeddings) {
      if (type == names.model_type) {
        facts.input_embedding = names.input;
        if (names.output != nullptr) facts.output_embedding = names.output;
      }
    }
  }
  if (!extra_state_file.empty() && fs::exists(dir_ / extra_state_file)) {
    facts.shira_indices = load_state(extra_state_file);
  }
  return facts;
}

PeftModel PeftRefCase::trained_model() const {
  PeftModel model;
  model.state = load_state("model_state.safetensors");
  for (const auto& [name, config] : json_["configs_in_memory"].items()) {
    model.adapters.emplace_back(
        name, PeftConfig::from_json(to_plain(config), name_ + "/case.json:configs_in_memory"));
  }
  model.facts = facts("model_extra_state.safetensors");
  return model;
}

PeftModel PeftRefCase::fresh_model() const {
  PeftModel model;
  const auto& info = json_["files"]["fresh_state.safetensors"];
  model.state = load_state("fresh_state.safetensors");
  // Adapter tensors created without storage (low_cpu_mem_usage) are meta tensors of
  // the architecture's shapes, which the trained model shows.
  const auto skipped = strings(info.value("skipped_keys", nlohmann::ordered_json()));
  if (!skipped.empty()) {
    const StateDict trained = load_state("model_state.safetensors");
    StateDict ordered;
    for (const auto& key : strings(info["keys_in_order"])) {
      if (const Tensor* tensor = model.state.find(key)) {
        ordered.set(key, *tensor);
      } else if (const Tensor* shape_source = trained.find(key)) {
        ordered.set(key, Tensor::meta(shape_source->dtype(), shape_source->shape()));
      }
    }
    model.state = std::move(ordered);
  }
  for (const auto& [name, config] : json_["fresh_model"]["configs"].items()) {
    model.adapters.emplace_back(
        name, PeftConfig::from_json(to_plain(config), name_ + "/case.json:fresh_model"));
  }
  model.facts = facts("");
  return model;
}

std::vector<std::string> peft_ref_case_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(peft_ref_root(), ec)) {
    if (entry.is_directory() && fs::exists(entry.path() / "case.json")) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace peft::testing
