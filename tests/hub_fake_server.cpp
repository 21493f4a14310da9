// A standalone fake Hugging Face Hub (tests/support/fake_hub.hpp behind a main) for
// scripts/hub-python-check.sh, which downloads the same repositories with huggingface_hub
// and with `peftcpp download` and compares the two caches.
//
// usage: hub_fake_server REPOS.json
//   {"org/name": {"refs": {"main": COMMIT, "v1.0": COMMIT},
//                 "commits": {COMMIT: {PATH: {"text": "..."} | {"size": N, "lfs": true}}}}}
// A file is given by its text, or by a size (deterministic bytes, so that large files need
// not be spelled out); "lfs": true serves it behind the redirect with a sha256 etag.
// Prints "port N" on stdout once the server answers, then runs until killed.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "fake_hub.hpp"

namespace {

std::string generated_bytes(std::uint64_t size) {
  // A simple LCG: varied bytes (not a run of one value) that both clients must copy exactly.
  std::string bytes(size, '\0');
  std::uint32_t state = 0x12345678u;
  for (auto& b : bytes) {
    state = state * 1664525u + 1013904223u;
    b = static_cast<char>(state >> 24);
  }
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: hub_fake_server REPOS.json\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "hub_fake_server: cannot read " << argv[1] << "\n";
    return 2;
  }
  nlohmann::json spec;
  try {
    spec = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    std::cerr << "hub_fake_server: " << argv[1] << ": " << e.what() << "\n";
    return 2;
  }
  peft::testing::FakeHub hub;
  for (const auto& [id, repo_spec] : spec.items()) {
    peft::testing::FakeRepo repo;
    for (const auto& [name, commit] : repo_spec.at("refs").items())
      repo.refs[name] = commit.get<std::string>();
    for (const auto& [commit, files] : repo_spec.at("commits").items()) {
      auto& tree = repo.commits[commit];
      for (const auto& [path, file] : files.items()) {
        peft::testing::FakeFile f;
        f.content = file.contains("text") ? file.at("text").get<std::string>()
                                          : generated_bytes(file.at("size").get<std::uint64_t>());
        f.lfs = file.value("lfs", false);
        tree[path] = std::move(f);
      }
    }
    hub.add_repo(id, std::move(repo));
  }
  std::cout << "port " << hub.port() << std::endl;
  // The server runs on its own thread; SIGTERM/SIGINT end the process.
  for (;;) ::pause();
}
