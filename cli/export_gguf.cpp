// peftcpp export-gguf: a LoRA adapter as llama.cpp's GGUF LoRA file.
#include <fmt/format.h>

#include "commands.hpp"
#include "peft/gguf_export.hpp"

namespace peftcpp::cli {

void register_export_gguf(CLI::App& app, GlobalOptions& global) {
  struct Options {
    std::string adapter, base, out, outtype = "f32";
    bool force = false;
    peft::GgufExportOptions export_options;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("export-gguf",
                                     "write a LoRA adapter as a GGUF file for llama.cpp (--lora)");
  cmd->add_option("adapter", options->adapter, "adapter folder or Hub id (org/name[/sub][@rev])")
      ->required();
  cmd->add_option("--base", options->base,
                  "base model folder or Hub id: only its config.json is read")
      ->required();
  cmd->add_option("--out", options->out, "the .gguf file to write")->required();
  cmd->add_option("--outtype", options->outtype,
                  "f32 (default, exact), f16, bf16 or q8_0 (smaller, approximate)")
      ->check(CLI::Validator(
          [](const std::string& text) -> std::string {
            return peft::gguf_out_type_from_name(text) ? std::string()
                                                       : "expected f32, f16, bf16 or q8_0";
          },
          "TYPE"));
  cmd->add_flag("--force", options->force, "replace an existing output");
  cmd->footer(
      "Refuses what llama.cpp's LoRA format cannot hold (DoRA, biases, modules_to_save, methods "
      "other than LoRA); merge those instead. docs/gguf.md lists the architectures.\n\n"
      "Example:\n  peftcpp export-gguf ./my-lora --base meta-llama/Llama-3.2-1B --out "
      "my-lora.gguf");
  cmd->callback([options, &global] {
    options->export_options.out_type = *peft::gguf_out_type_from_name(options->outtype);
    options->export_options.overwrite = options->force;
    const peft::GgufExportResult result =
        peft::export_gguf(options->adapter, options->base, options->out, options->export_options);
    if (!global.quiet) {
      fmt::print("wrote {}: {} tensors for llama.cpp architecture {}, alpha {}, {} bytes\n",
                 options->out, result.tensors, result.architecture, result.alpha, result.bytes);
    }
  });
}

}  // namespace peftcpp::cli
