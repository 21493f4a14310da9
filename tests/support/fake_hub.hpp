// A fake Hugging Face Hub for the download tests: a cpp-httplib server on 127.0.0.1 (port
// chosen by the system) that answers the requests huggingface_hub makes (HEAD/GET resolve,
// GET /api/models/.../revision/..., GET /api/models/.../tree/...) with the Hub's headers and
// error codes, serves large
// (LFS) files from /lfs/<sha256> behind a redirect to "localhost" (another host name for
// the same server), and injects faults on demand. Every request is logged.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hub/sha256.hpp"

namespace peft::testing {

struct FakeFile {
  std::string content;
  bool lfs = false;  // served from /lfs/<sha256> behind a redirect, etag = sha256
};

struct FakeRepo {
  std::map<std::string, std::string> refs;                         // branch/tag -> commit
  std::map<std::string, std::map<std::string, FakeFile>> commits;  // commit -> path -> file
  std::vector<std::string> extra_siblings;  // listed by the API, not served (e.g. "../../evil")
  bool is_private = false;
  bool gated = false;
};

struct LoggedRequest {
  std::string method, host, path, authorization, range;
};

// Faults of the /lfs/ (and resolve GET) bodies, by file content sha256.
struct Faults {
  int cut_times = 0;  // connections cut after cut_after bytes, this many times
  std::uint64_t cut_after = 0;
  int error_times = 0;  // 500 answers before success
  int slow_times = 0;   // answers delayed by slow_seconds before the first byte
  double slow_seconds = 0;
  bool corrupt = false;  // serve bytes that do not match the sha256
};

inline std::string sha256_hex(const std::string& bytes) {
  hub::Sha256 h;
  h.update(bytes);
  return h.hex_digest();
}

// A stand-in for the git blob sha1 the Hub uses as the etag of small files: 40 hex digits
// that depend on the content (the client only uses it as a name).
inline std::string small_etag(const std::string& bytes) {
  return sha256_hex("blob " + bytes).substr(0, 40);
}

class FakeHub {
 public:
  static constexpr const char* kGoodToken = "hf_good_token_123";
  static constexpr const char* kNoAccessToken = "hf_no_access_456";

  FakeHub() {
    server_.Get("/api/models/([^/]+)/([^/]+)/revision/(.*)",
                [this](const httplib::Request& req, httplib::Response& res) { api(req, res); });
    server_.Get("/api/models/([^/]+)/([^/]+)/tree/([^/]+)",
                [this](const httplib::Request& req, httplib::Response& res) { tree(req, res); });
    server_.Get("/([^/]+)/([^/]+)/resolve/([^/]+)/(.*)",
                [this](const httplib::Request& req, httplib::Response& res) { resolve(req, res); });
    server_.Get("/lfs/([0-9a-f]+)",
                [this](const httplib::Request& req, httplib::Response& res) { lfs(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() is a no-op before the loop runs: wait for it, so the destructor cannot hang.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeHub() {
    server_.stop();
    thread_.join();
  }
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  void add_repo(const std::string& id, FakeRepo repo) {
    const std::lock_guard lock(mutex_);
    repos_[id] = std::move(repo);
  }
  void set_faults(const std::string& content, Faults faults) {
    const std::lock_guard lock(mutex_);
    faults_[sha256_hex(content)] = faults;
  }
  std::vector<LoggedRequest> log() const {
    const std::lock_guard lock(mutex_);
    return log_;
  }
  void clear_log() {
    const std::lock_guard lock(mutex_);
    log_.clear();
    body_bytes_ = 0;
  }
  // File bytes sent (resolve GETs and /lfs/ bodies), whole or partial.
  std::uint64_t body_bytes() const { return body_bytes_; }

 private:
  // The access rule of the real Hub: private repos look missing without a good token,
  // gated ones say so (401 without a token, 403 with one lacking access), unknown tokens
  // get 401 without a code.
  bool refuse_access(const httplib::Request& req, httplib::Response& res, const FakeRepo* repo) {
    const std::string auth = req.get_header_value("Authorization");
    const std::string token = auth.starts_with("Bearer ") ? auth.substr(7) : "";
    if (!token.empty() && token != kGoodToken && token != kNoAccessToken) {
      res.status = 401;
      res.set_header("X-Error-Message", "Invalid credentials in Authorization header");
      return true;
    }
    if (repo == nullptr || (repo->is_private && token != kGoodToken)) {
      res.status = 401;
      res.set_header("X-Error-Code", "RepoNotFound");
      res.set_header("X-Error-Message", "Repository not found");
      return true;
    }
    if (repo->gated && token != kGoodToken) {
      res.status = token.empty() ? 401 : 403;
      res.set_header("X-Error-Code", "GatedRepo");
      res.set_header("X-Error-Message", "Access to this model is restricted");
      return true;
    }
    return false;
  }

  const std::string* commit_of(const FakeRepo& repo, const std::string& revision) const {
    if (const auto it = repo.refs.find(revision); it != repo.refs.end()) return &it->second;
    if (const auto it = repo.commits.find(revision); it != repo.commits.end()) return &it->first;
    return nullptr;
  }

  // Called by each handler before it answers, so that the log is complete when the
  // client has its answer.
  void note(const httplib::Request& req) {
    log_.push_back({req.method, req.get_header_value("Host"), req.path,
                    req.get_header_value("Authorization"), req.get_header_value("Range")});
  }

  // The repo and commit a request names ("{org}/{name}", revision), or an error answer.
  struct Located {
    std::string id;
    const FakeRepo* repo = nullptr;
    const std::string* commit = nullptr;
  };
  Located locate(const httplib::Request& req, httplib::Response& res) {
    Located at;
    at.id = req.matches[1].str() + "/" + req.matches[2].str();
    const auto repo = repos_.find(at.id);
    if (refuse_access(req, res, repo == repos_.end() ? nullptr : &repo->second)) return at;
    at.commit = commit_of(repo->second, req.matches[3].str());
    if (at.commit == nullptr) {
      res.status = 404;
      res.set_header("X-Error-Code", "RevisionNotFound");
      return at;
    }
    at.repo = &repo->second;
    return at;
  }

  void api(const httplib::Request& req, httplib::Response& res) {
    const std::lock_guard lock(mutex_);
    note(req);
    const Located at = locate(req, res);
    if (at.repo == nullptr) return;
    const std::string& id = at.id;
    const std::string* commit = at.commit;
    std::string siblings;
    for (const auto& [path, file] : at.repo->commits.at(*commit))
      siblings += (siblings.empty() ? "" : ",") + std::string("{\"rfilename\":\"") + path + "\"}";
    for (const auto& extra : at.repo->extra_siblings)
      siblings += (siblings.empty() ? "" : ",") + std::string("{\"rfilename\":\"") + extra + "\"}";
    res.set_content(
        "{\"id\":\"" + id + "\",\"sha\":\"" + *commit + "\",\"siblings\":[" + siblings + "]}",
        "application/json");
  }

  // The recursive tree listing (one page) that huggingface_hub 1.x's snapshot_download reads
  // instead of the siblings: files with their blob oid and size (and lfs sha256), folders.
  void tree(const httplib::Request& req, httplib::Response& res) {
    const std::lock_guard lock(mutex_);
    note(req);
    const Located at = locate(req, res);
    if (at.repo == nullptr) return;
    std::string entries;
    std::set<std::string> folders;
    const auto add = [&entries](const std::string& entry) {
      entries += (entries.empty() ? "" : ",") + entry;
    };
    for (const auto& [path, file] : at.repo->commits.at(*at.commit)) {
      for (auto slash = path.find('/'); slash != std::string::npos;
           slash = path.find('/', slash + 1)) {
        const std::string folder = path.substr(0, slash);
        if (folders.insert(folder).second) {
          add("{\"type\":\"directory\",\"oid\":\"" + small_etag("tree " + folder) +
              "\",\"size\":0,\"path\":\"" + folder + "\"}");
        }
      }
      const std::string size = std::to_string(file.content.size());
      std::string entry = "{\"type\":\"file\",\"path\":\"" + path + "\",\"size\":" + size;
      if (file.lfs) {
        const std::string sha = sha256_hex(file.content);
        entry += ",\"oid\":\"" + small_etag("pointer " + sha) + "\",\"lfs\":{\"oid\":\"" + sha +
                 "\",\"size\":" + size + ",\"pointerSize\":134}";
      } else {
        entry += ",\"oid\":\"" + small_etag(file.content) + "\"";
      }
      add(entry + "}");
    }
    res.set_content("[" + entries + "]", "application/json");
  }

  void resolve(const httplib::Request& req, httplib::Response& res) {
    const std::lock_guard lock(mutex_);
    note(req);
    const Located at = locate(req, res);
    if (at.repo == nullptr) return;
    const std::string* commit = at.commit;
    res.set_header("X-Repo-Commit", *commit);
    const auto& files = at.repo->commits.at(*commit);
    const auto file = files.find(req.matches[4].str());
    if (file == files.end()) {
      res.status = 404;
      res.set_header("X-Error-Code", "EntryNotFound");
      res.set_header("X-Error-Message", "Entry not found");
      return;
    }
    const std::string& content = file->second.content;
    if (file->second.lfs) {
      const std::string sha = sha256_hex(content);
      res.status = 302;
      res.set_header("Location", "http://localhost:" + std::to_string(port_) + "/lfs/" + sha);
      res.set_header("X-Linked-Etag", "\"" + sha + "\"");
      res.set_header("X-Linked-Size", std::to_string(content.size()));
      res.set_header("ETag", "\"" + small_etag("pointer " + sha) + "\"");
      return;
    }
    res.set_header("ETag", "\"" + small_etag(content) + "\"");
    if (req.method == "GET") body_bytes_ += content.size();
    res.set_content(content, "application/octet-stream");
  }

  void lfs(const httplib::Request& req, httplib::Response& res) {
    std::unique_lock lock(mutex_);
    note(req);
    const std::string sha = req.matches[1].str();
    const std::string* content = nullptr;
    for (const auto& [id, repo] : repos_)
      for (const auto& [commit, files] : repo.commits)
        for (const auto& [path, file] : files)
          if (file.lfs && sha256_hex(file.content) == sha) content = &file.content;
    if (content == nullptr) {
      res.status = 404;
      return;
    }
    Faults& faults = faults_[sha];
    if (faults.error_times > 0) {
      --faults.error_times;
      res.status = 500;
      return;
    }
    double delay = 0;
    if (faults.slow_times > 0) {
      --faults.slow_times;
      delay = faults.slow_seconds;
    }
    std::uint64_t cut = UINT64_MAX;
    if (faults.cut_times > 0) {
      --faults.cut_times;
      cut = faults.cut_after;
    }
    std::string body = *content;
    if (faults.corrupt) body[body.size() / 2] ^= 0x5a;
    lock.unlock();
    res.set_header("ETag", "\"" + sha + "\"");
    // A Range request without a fault gets the whole body and httplib's own range handling
    // (206 + Content-Range).
    if (!req.get_header_value("Range").empty() && delay == 0 && cut == UINT64_MAX) {
      res.set_content(body, "application/octet-stream");
      const auto ranges = req.ranges;
      if (ranges.size() == 1 && ranges[0].first >= 0 &&
          static_cast<std::size_t>(ranges[0].first) < body.size())
        body_bytes_ += body.size() - static_cast<std::size_t>(ranges[0].first);
      return;
    }
    auto slept = std::make_shared<bool>(false);
    res.set_content_provider(body.size(), "application/octet-stream",
                             [this, body, delay, cut, slept](std::size_t offset, std::size_t length,
                                                             httplib::DataSink& sink) {
                               if (delay > 0 && !*slept) {
                                 *slept = true;
                                 std::this_thread::sleep_for(std::chrono::duration<double>(delay));
                               }
                               std::size_t n = std::min<std::size_t>(length, 64 * 1024);
                               if (offset >= cut) return false;  // the connection is cut
                               if (offset + n > cut) n = cut - offset;
                               body_bytes_ += n;
                               sink.write(body.data() + offset, n);
                               return true;
                             });
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::map<std::string, FakeRepo> repos_;
  std::map<std::string, Faults> faults_;
  std::vector<LoggedRequest> log_;
  std::atomic<std::uint64_t> body_bytes_{0};
};

}  // namespace peft::testing
