#include "peft/convert.hpp"

#include <cmath>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "formats/atomic_file.hpp"
#include "peft/error.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

StateDict cast(StateDict weights, const std::optional<DType>& dtype) {
  if (!dtype) return weights;
  for (auto& [key, tensor] : weights) {
    if (is_floating(tensor.dtype()) && tensor.dtype() != *dtype) tensor = tensor.to(*dtype);
  }
  return weights;
}

void write_weights(const StateDict& weights, const fs::path& out,
                   const std::optional<Metadata>& metadata) {
  if (out.extension() == ".bin" || out.extension() == ".pt" || out.extension() == ".pth") {
    save_torch_file(weights, out);
  } else {
    SafetensorsWriteOptions options;
    options.copy_shared = true;
    save_safetensors(weights, out, metadata ? metadata : Metadata{{"format", "pt"}}, options);
  }
}

void refuse_existing(const fs::path& out, bool overwrite) {
  std::error_code ec;
  if (!overwrite && fs::exists(out, ec)) {
    throw Error(ErrorCode::InvalidArgument, out.string(),
                "exists already; pass --force to replace it");
  }
}

fs::path weights_in(const fs::path& folder) {
  for (const char* name : {"adapter_model.safetensors", "adapter_model.bin"}) {
    if (fs::exists(folder / name)) return folder / name;
  }
  throw Error(ErrorCode::NotFound, folder.string(),
              "holds no adapter_model.safetensors or adapter_model.bin");
}

void compare_tensors(const StateDict& a, const StateDict& b, const CompareOptions& options,
                     Comparison& out) {
  for (const auto& [key, x] : a) {
    const Tensor* y = b.find(key);
    if (y == nullptr) {
      out.tensors.push_back({key, "only in A"});
      continue;
    }
    ++out.compared;
    if (x.dtype() != y->dtype()) {
      out.tensors.push_back(
          {key, fmt::format("dtype {} vs {}", dtype_name(x.dtype()), dtype_name(y->dtype()))});
    } else if (x.shape() != y->shape()) {
      out.tensors.push_back({key, fmt::format("shape {} vs {}", shape_to_string(x.shape()),
                                              shape_to_string(y->shape()))});
    } else if (!x.equals(*y)) {
      TensorDifference d{key, "values"};
      // Without a tolerance, any byte counts (-0.0 differs from 0.0).
      bool beyond_tolerance =
          !is_convertible(x.dtype()) || (options.atol == 0 && options.rtol == 0);
      if (is_convertible(x.dtype())) {
        const auto xs = x.to_doubles(), ys = y->to_doubles();
        for (std::size_t i = 0; i < xs.size(); ++i) {
          if (std::isnan(xs[i]) && std::isnan(ys[i])) continue;
          const double diff = std::fabs(xs[i] - ys[i]);
          d.max_abs = std::max(d.max_abs, diff);
          if (ys[i] != 0) d.max_rel = std::max(d.max_rel, diff / std::fabs(ys[i]));
          // numpy.allclose's rule; a NaN against a number is always a difference.
          if (!(diff <= options.atol + options.rtol * std::fabs(ys[i]))) beyond_tolerance = true;
        }
      }
      if (beyond_tolerance) {
        out.tensors.push_back(d);
      } else {
        ++out.within_tolerance;
      }
    }
  }
  for (const auto& [key, y] : b) {
    if (!a.contains(key)) out.tensors.push_back({key, "only in B"});
  }
}

void compare_configs(const fs::path& a, const fs::path& b, Comparison& out) {
  const bool has_a = fs::exists(a), has_b = fs::exists(b);
  if (!has_a && !has_b) return;
  if (has_a != has_b) {
    out.config_differences.push_back(has_a ? "adapter_config.json only in A"
                                           : "adapter_config.json only in B");
    return;
  }
  const auto read = [](const fs::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(in, nullptr, false);
  };
  const auto ja = read(a), jb = read(b);
  if (!ja.is_object() || !jb.is_object()) {
    if (ja != jb)
      out.config_differences.push_back("adapter_config.json differs (not both JSON objects)");
    return;
  }
  for (const auto& [field, value] : ja.items()) {
    if (!jb.contains(field)) {
      out.config_differences.push_back(fmt::format("{}: {} -> (absent)", field, value.dump()));
    } else if (jb[field] != value) {
      out.config_differences.push_back(
          fmt::format("{}: {} -> {}", field, value.dump(), jb[field].dump()));
    }
  }
  for (const auto& [field, value] : jb.items()) {
    if (!ja.contains(field))
      out.config_differences.push_back(fmt::format("{}: (absent) -> {}", field, value.dump()));
  }
}

}  // namespace

bool is_weights_extension(const fs::path& path) {
  const FileFormat named = format_from_extension(path);
  return named == FileFormat::Safetensors || named == FileFormat::TorchZip;
}

void convert_adapter(const fs::path& in, const fs::path& out, const ConvertOptions& options) {
  return annotate_errors(in.string(), [&]() -> void {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      if (fs::exists(out, ec) && !fs::is_directory(out, ec)) {
        throw Error(ErrorCode::InvalidArgument, out.string(),
                    "is a file; an adapter folder converts into a folder");
      }
      refuse_existing(out / "adapter_model.safetensors", options.overwrite);
      refuse_existing(out / "adapter_model.bin", options.overwrite);
      const fs::path source = weights_in(in);
      // A folder converts to the other format unless only the dtype changes.
      const bool to_bin = source.extension() == ".safetensors" && !options.dtype;
      // Read (and cast) before the output folder exists: a failure leaves nothing behind.
      const StateDict weights = cast(read_weights_file(source), options.dtype);
      std::optional<std::string> config_text;
      if (fs::exists(in / "adapter_config.json", ec)) {
        std::ifstream config(in / "adapter_config.json", std::ios::binary);
        config_text.emplace((std::istreambuf_iterator<char>(config)),
                            std::istreambuf_iterator<char>());
      }
      formats::OutputFolder guard(out);
      write_weights(weights, out / (to_bin ? "adapter_model.bin" : "adapter_model.safetensors"),
                    std::nullopt);
      if (config_text) formats::write_file_atomically(out / "adapter_config.json", *config_text);
      guard.commit();
      return;
    }
    if (!is_weights_extension(out)) {
      throw Error(ErrorCode::InvalidArgument, out.string(),
                  "unknown output format: name the file .safetensors, .bin, .pt or .pth");
    }
    refuse_existing(out, options.overwrite);
    if (weights_reader_for(in) == FileFormat::Safetensors) {
      const SafetensorsFile file = SafetensorsFile::open(in);  // its metadata travels along
      write_weights(cast(file.state_dict(), options.dtype), out, file.metadata());
    } else {
      write_weights(cast(load_torch_file(in), options.dtype), out, std::nullopt);
    }
  });
}

Comparison compare_adapters(const fs::path& a, const fs::path& b, const CompareOptions& options) {
  return annotate_errors(a.string(), [&]() -> Comparison {
    Comparison out;
    std::error_code ec;
    const bool folder_a = fs::is_directory(a, ec), folder_b = fs::is_directory(b, ec);
    // A folder stands for its weights file when compared with a file.
    compare_tensors(read_weights_file(folder_a ? weights_in(a) : a),
                    read_weights_file(folder_b ? weights_in(b) : b), options, out);
    if (folder_a && folder_b) {
      compare_configs(a / "adapter_config.json", b / "adapter_config.json", out);
    }
    return out;
  });
}

nlohmann::json to_json(const Comparison& c) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& d : c.tensors) {
    nlohmann::json entry{{"key", d.key}, {"difference", d.what}};
    if (d.what == "values") {
      entry["max_abs"] = d.max_abs;
      entry["max_rel"] = d.max_rel;
    }
    tensors.push_back(entry);
  }
  return {{"identical", c.identical()},
          {"compared", c.compared},
          {"within_tolerance", c.within_tolerance},
          {"tensors", tensors},
          {"config", c.config_differences}};
}

}  // namespace peft
