// peftcpp extract: get_peft_model_state_dict from a full PEFT-model checkpoint, written
// as an adapter folder.
#include <fmt/format.h>

#include <fstream>

#include "commands.hpp"
#include "peft/adapter_io.hpp"
#include "peft/error.hpp"
#include "peft/file_format.hpp"
#include "peft/peft_state_dict.hpp"
#include "peft/safetensors.hpp"
#include "peft/validate.hpp"

namespace peftcpp::cli {
namespace fs = std::filesystem;

namespace {

// A config of another adapter extracts tensors that validate then rejects: check the
// extracted weights against the config before anything is written.
void refuse_mismatched_config(const peft::PeftModel& model, const std::string& adapter,
                              peft::SaveEmbeddingLayers embeddings, const std::string& config) {
  peft::PeftModel copy = model;  // get_peft_model_state_dict may rewrite AdaLoRA's config
  peft::GetStateDictOptions get;
  get.adapter_name = adapter;
  get.save_embedding_layers = embeddings;
  const peft::StateDict weights = peft::get_peft_model_state_dict(copy, get);
  if (weights.empty()) return;  // save_pretrained says why
  for (const auto& p : peft::validate_adapter(copy.config(adapter), weights, config)) {
    if (p.severity != peft::Severity::Error) continue;
    throw peft::Error(peft::ErrorCode::InvalidArgument, config,
                      fmt::format("does not describe the adapter '{}' in the model: {} [{}] {}",
                                  adapter, p.source, p.code, p.message));
  }
}

}  // namespace

void register_extract(CLI::App& app, GlobalOptions& global) {
  struct Options {
    std::string model, config, adapter = "default", embeddings = "auto", out;
    std::string base_config, input_embedding, output_embedding, shira_indices;
    bool force = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("extract", "write the adapter held in a full PEFT-model checkpoint");
  cmd->add_option("--model", options->model,
                  "the PEFT model's full state_dict() (.safetensors or torch.save .bin)")
      ->required();
  cmd->add_option("--config", options->config, "adapter_config.json (or its folder)")->required();
  cmd->add_option("--adapter", options->adapter,
                  "adapter name inside the model's keys (default: default)");
  cmd->add_option("--save-embedding-layers", options->embeddings, "auto, true or false")
      ->check(CLI::IsMember({"auto", "true", "false"}));
  cmd->add_option("--out", options->out, "output adapter folder")->required();
  cmd->add_option("--base-config", options->base_config,
                  "the base model's config.json (vocab_size, model type)");
  cmd->add_option("--input-embedding", options->input_embedding,
                  "input embedding module (e.g. model.embed_tokens)");
  cmd->add_option("--output-embedding", options->output_embedding,
                  "output embedding module (e.g. lm_head)");
  cmd->add_option("--shira-indices", options->shira_indices,
                  "SHiRA indices (.safetensors, keys <module>.shira_indices.<adapter>)");
  cmd->add_flag("--force", options->force, "write into an existing adapter folder");
  cmd->footer(
      "Example:\n  peftcpp extract --model full_state.safetensors --config adapter_config.json "
      "--out my-adapter");
  cmd->callback([options, &global] {
    const fs::path out(options->out);
    if (!options->force && fs::exists(out / "adapter_config.json")) {
      throw peft::Error(peft::ErrorCode::InvalidArgument, out.string(),
                        "already holds an adapter; pass --force to replace it");
    }
    peft::PeftModel model;
    model.state = peft::read_weights_file(options->model);
    model.adapters.emplace_back(options->adapter, peft::PeftConfig::load(options->config));
    if (!options->base_config.empty()) {
      std::ifstream in(options->base_config);
      const auto json = nlohmann::json::parse(in, nullptr, false);
      if (!json.is_object()) {
        throw peft::Error(peft::ErrorCode::InvalidJson, options->base_config,
                          "is not a JSON object");
      }
      model.facts.has_embedding_accessors = true;
      if (json.contains("vocab_size") && json["vocab_size"].is_number_integer()) {
        model.facts.vocab_size = json["vocab_size"].get<std::int64_t>();
      }
    }
    if (!options->input_embedding.empty()) model.facts.input_embedding = options->input_embedding;
    if (!options->output_embedding.empty())
      model.facts.output_embedding = options->output_embedding;
    if (model.facts.input_embedding || model.facts.output_embedding)
      model.facts.has_embedding_accessors = true;
    if (!options->shira_indices.empty()) {
      model.facts.shira_indices = peft::SafetensorsFile::open(options->shira_indices).state_dict();
    }
    peft::SavePretrainedOptions save;
    save.selected_adapters = {options->adapter};
    save.save_embedding_layers = options->embeddings == "true"    ? peft::SaveEmbeddingLayers::Yes
                                 : options->embeddings == "false" ? peft::SaveEmbeddingLayers::No
                                                                  : peft::SaveEmbeddingLayers::Auto;
    refuse_mismatched_config(model, options->adapter, save.save_embedding_layers, options->config);
    peft::Diagnostics warnings;
    save.warnings = &warnings;
    peft::save_pretrained(model, out, save);
    if (!global.quiet) {
      for (const auto& warning : warnings) {
        fmt::print(stderr, "peftcpp: warning: {}\n", peft::to_text(warning));
      }
      fmt::print("wrote adapter '{}' to {}\n", options->adapter, out.string());
    }
  });
}

}  // namespace peftcpp::cli
