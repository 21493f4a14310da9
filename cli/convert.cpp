// peftcpp convert: .bin <-> .safetensors, folder -> folder, optional dtype cast.
#include <fmt/format.h>

#include <filesystem>

#include "commands.hpp"
#include "peft/convert.hpp"
#include "peft/error.hpp"

namespace peftcpp::cli {

void register_convert(CLI::App& app, GlobalOptions& global) {
  struct Options {
    std::string in, out, dtype;
    bool force = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("convert", "convert weights between .bin and .safetensors, or cast them");
  cmd->add_option("in", options->in, "weights file or adapter folder")->required();
  cmd->add_option("out", options->out,
                  "output file (.safetensors, .bin, .pt or .pth: the format) or, for a folder, "
                  "output folder")
      ->required();
  cmd->add_option("--dtype", options->dtype, "cast floating tensors")->check(kCastDtypeNames);
  cmd->add_flag("--force", options->force, "replace an existing output");
  cmd->footer(
      "Outputs are written atomically (a temporary file renamed into place).\n\nExamples:\n"
      "  peftcpp convert adapter_model.bin adapter_model.safetensors\n"
      "  peftcpp convert old-adapter new-adapter --dtype bf16");
  cmd->callback([options, &global] {
    std::error_code ec;
    if (!std::filesystem::is_directory(options->in, ec) &&
        !peft::is_weights_extension(options->out)) {
      throw CLI::ValidationError(
          "out", fmt::format("'{}': unknown output format; name the file .safetensors, .bin, .pt "
                             "or .pth (a folder converts only from a folder)",
                             options->out));
    }
    peft::ConvertOptions convert;
    convert.overwrite = options->force;
    convert.dtype = cast_dtype(options->dtype);
    peft::convert_adapter(options->in, options->out, convert);
    if (!global.quiet) fmt::print("wrote {}\n", options->out);  // names what was written
  });
}

}  // namespace peftcpp::cli
