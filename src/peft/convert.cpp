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

bool is_zip_or_pickle(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[2] = {};
  in.read(magic, 2);
  return (magic[0] == 'P' && magic[1] == 'K') || static_cast<unsigned char>(magic[0]) == 0x80;
}

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

void compare_tensors(const StateDict& a, const StateDict& b, Comparison& out) {
  for (const auto& [key, x] : a) {
    const Tensor* y = b.find(key);
    if (y == nullptr) {
      out.tensors.push_back({key, "only in A"});
    } else if (x.dtype() != y->dtype()) {
      out.tensors.push_back(
          {key, fmt::format("dtype {} vs {}", dtype_name(x.dtype()), dtype_name(y->dtype()))});
    } else if (x.shape() != y->shape()) {
      out.tensors.push_back({key, fmt::format("shape {} vs {}", shape_to_string(x.shape()),
                                              shape_to_string(y->shape()))});
    } else if (!x.equals(*y)) {
      TensorDifference d{key, "values"};
      if (is_convertible(x.dtype())) {
        const auto xs = x.to_doubles(), ys = y->to_doubles();
        for (std::size_t i = 0; i < xs.size(); ++i) {
          const double diff = std::fabs(xs[i] - ys[i]);
          d.max_abs = std::max(d.max_abs, diff);
          if (ys[i] != 0) d.max_rel = std::max(d.max_rel, diff / std::fabs(ys[i]));
        }
      }
      out.tensors.push_back(d);
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

StateDict read_weights_file(const fs::path& path) {
  if (is_zip_or_pickle(path)) return load_torch_file(path);
  return SafetensorsFile::open(path).state_dict();
}

void convert_adapter(const fs::path& in, const fs::path& out, const ConvertOptions& options) {
  std::error_code ec;
  if (fs::is_directory(in, ec)) {
    refuse_existing(out / "adapter_model.safetensors", options.overwrite);
    refuse_existing(out / "adapter_model.bin", options.overwrite);
    const fs::path source = weights_in(in);
    // A folder converts to the other format unless only the dtype changes.
    const bool to_bin = source.extension() == ".safetensors" && !options.dtype;
    fs::create_directories(out);
    write_weights(cast(read_weights_file(source), options.dtype),
                  out / (to_bin ? "adapter_model.bin" : "adapter_model.safetensors"), std::nullopt);
    if (fs::exists(in / "adapter_config.json")) {
      std::ifstream config(in / "adapter_config.json", std::ios::binary);
      const std::string text((std::istreambuf_iterator<char>(config)),
                             std::istreambuf_iterator<char>());
      formats::write_file_atomically(out / "adapter_config.json", text);
    }
    return;
  }
  refuse_existing(out, options.overwrite);
  std::optional<Metadata> metadata;
  if (!is_zip_or_pickle(in)) metadata = SafetensorsFile::open(in).metadata();
  write_weights(cast(read_weights_file(in), options.dtype), out, metadata);
}

Comparison compare_adapters(const fs::path& a, const fs::path& b) {
  Comparison out;
  std::error_code ec;
  if (fs::is_directory(a, ec) && fs::is_directory(b, ec)) {
    compare_tensors(read_weights_file(weights_in(a)), read_weights_file(weights_in(b)), out);
    compare_configs(a / "adapter_config.json", b / "adapter_config.json", out);
  } else {
    compare_tensors(read_weights_file(a), read_weights_file(b), out);
  }
  return out;
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
  return {{"identical", c.identical()}, {"tensors", tensors}, {"config", c.config_differences}};
}

}  // namespace peft
