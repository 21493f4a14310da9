#include "engine/model_card.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "formats/atomic_file.hpp"

namespace peft {
namespace {

constexpr const char* kPeftLine = "- PEFT 0.18.0";

// A YAML scalar as PyYAML writes it: plain when safe, else single-quoted.
std::string yaml_scalar(const std::string& text) {
  const bool plain = !text.empty() && text.find(": ") == std::string::npos && text.back() != ':' &&
                     text.find(" #") == std::string::npos &&
                     std::string("-?:,[]{}#&*!|>'\"%@` ").find(text.front()) == std::string::npos &&
                     text.back() != ' ';
  if (plain) return text;
  std::string quoted = "'";
  for (const char c : text) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  return quoted + "'";
}

struct FrontMatter {
  std::vector<std::pair<std::string, std::vector<std::string>>> entries;  // key -> its lines
  bool has(const std::string& key) const {
    return std::any_of(entries.begin(), entries.end(),
                       [&](const auto& e) { return e.first == key; });
  }
  void set(const std::string& key, std::vector<std::string> lines) {
    for (auto& entry : entries) {
      if (entry.first == key) {
        entry.second = std::move(lines);
        return;
      }
    }
    entries.emplace_back(key, std::move(lines));
  }
};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  if (!text.empty() && text.back() == '\n') lines.emplace_back();
  return lines;
}

}  // namespace

std::string model_card_text(const std::string& existing, const ModelCardFacts& facts) {
  std::vector<std::string> lines = split_lines(existing);
  FrontMatter front;
  std::vector<std::string> body;
  std::size_t i = 0;
  if (!lines.empty() && lines[0] == "---") {
    for (i = 1; i < lines.size() && lines[i] != "---"; ++i) {
      const std::string& line = lines[i];
      const bool top_level =
          !line.empty() && line[0] != ' ' && line[0] != '-' && line.find(':') != std::string::npos;
      if (top_level) {
        front.entries.emplace_back(line.substr(0, line.find(':')), std::vector<std::string>{line});
      } else if (!front.entries.empty()) {
        front.entries.back().second.push_back(line);
      }
    }
    ++i;  // the closing ---
    if (i < lines.size() && lines[i].empty()) ++i;
  }
  for (; i < lines.size(); ++i) body.push_back(lines[i]);
  if (existing.empty()) {
    body = {"# Model Card for Model ID",
            "",
            "<!-- Provide a quick summary of what the model is/does. -->",
            "",
            "A PEFT adapter written by peftcpp.",
            ""};
  }

  if (facts.base_model) front.set("base_model", {"base_model: " + yaml_scalar(*facts.base_model)});
  front.set("library_name", {"library_name: peft"});
  if (!facts.pipeline_tag.empty() && !front.has("pipeline_tag")) {
    front.set("pipeline_tag", {"pipeline_tag: " + facts.pipeline_tag});
  }
  std::set<std::string> tags;
  if (facts.is_transformers_model) tags.insert("transformers");
  if (facts.lora) tags.insert("lora");
  if (facts.base_model) tags.insert("base_model:adapter:" + *facts.base_model);
  if (!tags.empty()) {
    std::vector<std::string> tag_lines{"tags:"};
    for (const auto& tag : tags) tag_lines.push_back("- " + yaml_scalar(tag));
    front.set("tags", tag_lines);
  }

  if (std::find(body.begin(), body.end(), kPeftLine) == body.end()) {
    const auto heading = std::find(body.begin(), body.end(), "### Framework versions");
    if (heading != body.end() && std::distance(heading, body.end()) >= 2) {
      body.insert(heading + 2, kPeftLine);
    } else {
      body.insert(body.end(), {"### Framework versions", "", kPeftLine});
    }
  }
  std::string out = "---\n";
  // A fresh card lists its keys in the template's order.
  if (existing.empty()) {
    std::sort(front.entries.begin(), front.entries.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  for (const auto& [key, entry_lines] : front.entries) {
    for (const auto& line : entry_lines) out += line + "\n";
  }
  out += "---\n\n";
  for (std::size_t k = 0; k < body.size(); ++k) out += (k ? "\n" : "") + body[k];
  return out;
}

void write_model_card(const std::filesystem::path& path, const ModelCardFacts& facts) {
  std::string existing;
  if (std::ifstream in{path}) {
    std::stringstream buffer;
    buffer << in.rdbuf();
    existing = buffer.str();
  }
  formats::write_file_atomically(path, model_card_text(existing, facts));
}

}  // namespace peft
