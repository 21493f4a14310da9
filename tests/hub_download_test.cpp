// hf_hub_download / snapshot_download / `peftcpp download` against the fake Hub of
// support/fake_hub.hpp (127.0.0.1, port chosen by the system): the cache tree written
// (paths, symlink targets, permissions, refs, markers, locks) is compared entry by entry
// with what huggingface_hub 0.36 writes (docs/hub.md), for each scenario of issue 15.
#include <sys/stat.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "fake_hub.hpp"
#include "hub/hub_protocol.hpp"
#include "hub/sha256.hpp"
#include "peft/adapter_io.hpp"
#include "peft/checkpoint.hpp"
#include "peft/hub_download.hpp"
#include "synthetic_model.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using testing::FakeFile;
using testing::FakeHub;
using testing::FakeRepo;
using testing::Faults;
using testing::sha256_hex;
using testing::small_etag;

const std::string kMain(40, 'a');
const std::string kTag(40, 'b');

// The cache as lines "path" (folder), "path -> target" (symlink), "path 0644 N bytes"
// (file), sorted: one string to compare with the expected tree.
std::set<std::string> tree(const fs::path& root) {
  std::set<std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string rel = it->path().lexically_relative(root).string();
    if (it->is_symlink()) {
      out.insert(rel + " -> " + fs::read_symlink(it->path()).string());
    } else if (it->is_directory()) {
      out.insert(rel + "/");
    } else {
      struct stat st {};
      ::lstat(it->path().c_str(), &st);
      out.insert(rel + " " + fmt::format("{:04o}", st.st_mode & 0777) + " " +
                 std::to_string(st.st_size));
    }
  }
  return out;
}

std::string lfs_content(std::size_t size, char seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>(seed + i * 7 + i / 251);
  return out;
}

struct Fixture : ::testing::Test {
  FakeHub hub;
  testing::TempDir dir;
  fs::path cache = dir / "hub";
  const std::string config = "{\"peft_type\": \"LORA\"}";
  const std::string config_v1 = "{\"peft_type\": \"LORA\", \"r\": 4}";
  const std::string spaced = "spaced file";
  const std::string weights = lfs_content(300000, 3);
  const std::string repo_folder = "models--org--adapter";

  void SetUp() override {
    ::umask(022);
    FakeRepo repo;
    repo.refs = {{"main", kMain}, {"v1.0", kTag}};
    repo.commits[kMain] = {{"adapter_config.json", {config}},
                           {"adapter_model.safetensors", {weights, true}},
                           {"sub/dir/a b.txt", {spaced}},
                           {"README.md", {"readme"}}};
    repo.commits[kTag] = {{"adapter_config.json", {config_v1}}};
    hub.add_repo("org/adapter", repo);
  }

  HubSnapshotOptions options(const std::string& revision = "main") const {
    HubSnapshotOptions o;
    o.revision = revision;
    o.settings = HubSettings{};
    o.settings.endpoint = hub.endpoint();
    o.settings.cache_dir = cache;
    o.settings.retry_delay = 0.01;
    o.settings.download_timeout = 1;
    o.settings.etag_timeout = 2;
    return o;
  }
  std::string lock(const std::string& etag) const {
    return ".locks/" + repo_folder + "/" + etag + ".lock 0664 0";  // whatever the umask
  }
  std::string cachedir_tag() const {
    std::error_code ec;
    return "CACHEDIR.TAG 0644 " + std::to_string(fs::file_size(cache / "CACHEDIR.TAG", ec));
  }
  std::string blob(const std::string& content) const {
    return repo_folder + "/blobs/" + small_etag(content) + " 0644 " +
           std::to_string(content.size());
  }
  std::string lfs_blob(const std::string& content) const {
    return repo_folder + "/blobs/" + sha256_hex(content) + " 0644 " +
           std::to_string(content.size());
  }
  std::string ref(const std::string& name, const std::string& commit) const {
    return repo_folder + "/refs/" + name + " 0644 " + std::to_string(commit.size());
  }
};

std::string read(const fs::path& p) {
  return testing::read_text(p);
}

using HubDownload = Fixture;

TEST_F(HubDownload, OneFileWritesTheCacheAsHuggingfaceHubDoes) {
  const fs::path path = hf_hub_download("org/adapter", "adapter_config.json", options());
  EXPECT_EQ(path, cache / repo_folder / "snapshots" / kMain / "adapter_config.json");
  EXPECT_EQ(read(path), config);
  EXPECT_EQ(read(cache / repo_folder / "refs/main"), kMain);  // no newline
  const std::string etag = small_etag(config);
  EXPECT_EQ(
      tree(cache),
      (std::set<std::string>{
          ".locks/", ".locks/" + repo_folder + "/", lock(etag), cachedir_tag(), repo_folder + "/",
          repo_folder + "/blobs/", blob(config), repo_folder + "/refs/", ref("main", kMain),
          repo_folder + "/snapshots/", repo_folder + "/snapshots/" + kMain + "/",
          repo_folder + "/snapshots/" + kMain + "/adapter_config.json -> ../../blobs/" + etag}));
  // Again: one HEAD, no file bytes.
  hub.clear_log();
  EXPECT_EQ(hf_hub_download("org/adapter", "adapter_config.json", options()), path);
  EXPECT_EQ(hub.body_bytes(), 0U);
  ASSERT_EQ(hub.log().size(), 1U);
  EXPECT_EQ(hub.log()[0].method, "HEAD");
  // At the full commit: no request at all, and no ref written for a commit.
  hub.clear_log();
  EXPECT_EQ(hf_hub_download("org/adapter", "adapter_config.json", options(kMain)), path);
  EXPECT_TRUE(hub.log().empty());
  EXPECT_FALSE(fs::exists(cache / repo_folder / "refs" / kMain));
}

// Found by scripts/hub-python-check.sh against huggingface_hub 1.23: the cache tag at the
// cache's root, lock files of mode 0664 truncated only by their holder, and no snapshot
// folder for a snapshot that selects no file.
TEST_F(HubDownload, CacheTagLocksAndEmptySelectionAsHuggingfaceHub1) {
  // A failed look-up writes no tag.
  EXPECT_THROW(hf_hub_download("org/adapter", "nope.bin", options()), HubError);
  EXPECT_FALSE(fs::exists(cache / "CACHEDIR.TAG"));
  // A lock file left by another client, with bytes in it and another mode.
  const std::string etag = small_etag(config);
  const fs::path lock_file = cache / ".locks" / repo_folder / (etag + ".lock");
  fs::create_directories(lock_file.parent_path());
  std::ofstream(lock_file) << "12345";
  fs::permissions(lock_file, fs::perms::owner_read | fs::perms::owner_write);
  hf_hub_download("org/adapter", "adapter_config.json", options());
  EXPECT_EQ(tree(cache).count(lock(etag)), 1U);
  const std::string tag = read(cache / "CACHEDIR.TAG");
  EXPECT_TRUE(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55\n")) << tag;
  EXPECT_EQ(tree(cache).count(cachedir_tag()), 1U);
  // A tag already there is kept.
  std::ofstream(cache / "CACHEDIR.TAG") << "Signature: 8a477f597d28d172789f06886806bc55\n";
  hf_hub_download("org/adapter", "adapter_config.json", options("v1.0"));
  EXPECT_EQ(read(cache / "CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n");
  // Nothing selected: the ref, but no snapshot folder (the path is still returned).
  auto o = options();
  o.allow_patterns = {"nothing*"};
  const fs::path other = dir / "other";
  o.settings.cache_dir = other;
  EXPECT_EQ(snapshot_download("org/adapter", o), other / repo_folder / "snapshots" / kMain);
  EXPECT_EQ(tree(other), (std::set<std::string>{repo_folder + "/", repo_folder + "/refs/",
                                                repo_folder + "/refs/main 0644 40"}));
}

TEST_F(HubDownload, BranchAndTagGetTheirOwnRefsAndSnapshots) {
  const fs::path main = hf_hub_download("org/adapter", "adapter_config.json", options());
  const fs::path tag = hf_hub_download("org/adapter", "adapter_config.json", options("v1.0"));
  EXPECT_EQ(read(main), config);
  EXPECT_EQ(read(tag), config_v1);
  EXPECT_EQ(read(cache / repo_folder / "refs/v1.0"), kTag);
  EXPECT_EQ(fs::read_symlink(tag).string(), "../../blobs/" + small_etag(config_v1));
  EXPECT_EQ(tree(cache).count(ref("v1.0", kTag)), 1U);
}

TEST_F(HubDownload, SubFolderAndSpaceInTheName) {
  auto o = options();
  o.subfolder = "sub/dir";
  const fs::path path = hf_hub_download("org/adapter", "a b.txt", o);
  EXPECT_EQ(path, cache / repo_folder / "snapshots" / kMain / "sub/dir/a b.txt");
  EXPECT_EQ(read(path), spaced);
  // one more "../" per sub folder
  EXPECT_EQ(fs::read_symlink(path).string(), "../../../../blobs/" + small_etag(spaced));
  bool quoted = false;
  for (const auto& r : hub.log())
    quoted |= r.method == "HEAD" && r.path.find("a b.txt") != std::string::npos;
  EXPECT_TRUE(quoted);  // httplib decodes the path: %20 arrived as a space
}

TEST_F(HubDownload, LargeFileFollowsTheRedirectWithoutTheToken) {
  auto o = options();
  o.settings.token = FakeHub::kGoodToken;
  const fs::path path = hf_hub_download("org/adapter", "adapter_model.safetensors", o);
  const std::string sha = sha256_hex(weights);
  EXPECT_EQ(fs::read_symlink(path).string(), "../../blobs/" + sha);
  EXPECT_EQ(read(path), weights);
  EXPECT_EQ(tree(cache).count(lfs_blob(weights)), 1U);
  EXPECT_EQ(tree(cache).count(lock(sha)), 1U);
  bool saw_redirect_host = false;
  for (const auto& r : hub.log()) {
    if (r.host.starts_with("localhost")) {
      saw_redirect_host = true;
      EXPECT_EQ(r.authorization, "") << "the token reached " << r.host << r.path;
    } else {
      EXPECT_EQ(r.authorization, std::string("Bearer ") + FakeHub::kGoodToken);
    }
  }
  EXPECT_TRUE(saw_redirect_host);
  EXPECT_EQ(hub.body_bytes(), weights.size());
}

TEST_F(HubDownload, SnapshotWithPatternsFetchesEachFileAtTheCommit) {
  auto o = options();
  o.allow_patterns = {"*.json", "sub/"};
  o.ignore_patterns = {"*.md"};
  const fs::path snapshot = snapshot_download("org/adapter", o);
  EXPECT_EQ(snapshot, cache / repo_folder / "snapshots" / kMain);
  const std::string s = repo_folder + "/snapshots/" + kMain + "/";
  EXPECT_EQ(
      tree(cache / repo_folder),
      (std::set<std::string>{
          "blobs/", "blobs/" + small_etag(config) + " 0644 " + std::to_string(config.size()),
          "blobs/" + small_etag(spaced) + " 0644 " + std::to_string(spaced.size()), "refs/",
          "refs/main 0644 40", "snapshots/", "snapshots/" + kMain + "/",
          "snapshots/" + kMain + "/adapter_config.json -> ../../blobs/" + small_etag(config),
          "snapshots/" + kMain + "/sub/", "snapshots/" + kMain + "/sub/dir/",
          "snapshots/" + kMain + "/sub/dir/a b.txt -> ../../../../blobs/" + small_etag(spaced)}));
  for (const auto& r : hub.log()) {
    if (r.path.find("/resolve/") != std::string::npos)
      EXPECT_NE(r.path.find("/resolve/" + kMain + "/"), std::string::npos) << r.path;
  }
  hub.clear_log();
  EXPECT_EQ(snapshot_download("org/adapter", o), snapshot);
  EXPECT_EQ(hub.body_bytes(), 0U);
}

TEST_F(HubDownload, WholeSnapshotInParallel) {
  const fs::path snapshot = snapshot_download("org/adapter", options());
  EXPECT_EQ(read(snapshot / "adapter_model.safetensors"), weights);
  EXPECT_EQ(read(snapshot / "README.md"), "readme");
  EXPECT_EQ(read(snapshot / "sub/dir/a b.txt"), spaced);
}

TEST_F(HubDownload, PrivateRepoNeedsTheToken) {
  FakeRepo repo;
  repo.is_private = true;
  repo.refs = {{"main", kMain}};
  repo.commits[kMain] = {{"f.txt", {"secret"}}};
  hub.add_repo("org/private", repo);
  try {
    hf_hub_download("org/private", "f.txt", options());
    FAIL() << "expected RepoNotFound";
  } catch (const HubError& e) {
    EXPECT_EQ(e.kind(), HubErrorKind::RepoNotFound) << e.what();
    EXPECT_EQ(e.code(), ErrorCode::NotFound);
    EXPECT_NE(std::string(e.what()).find("log in"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("org/private@main:f.txt"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(cache / "models--org--private" / "snapshots"));
  auto o = options();
  o.settings.token = FakeHub::kGoodToken;
  EXPECT_EQ(read(hf_hub_download("org/private", "f.txt", o)), "secret");
  // An unknown token: 401 without a code.
  o.settings.token = "hf_unknown";
  try {
    snapshot_download("org/private", o);
    FAIL();
  } catch (const HubError& e) {
    EXPECT_EQ(e.kind(), HubErrorKind::Unauthorized) << e.what();
    EXPECT_EQ(std::string(e.what()).find("hf_unknown"), std::string::npos) << "token printed";
  }
}

TEST_F(HubDownload, GatedRepoSaysToRequestAccess) {
  FakeRepo repo;
  repo.gated = true;
  repo.refs = {{"main", kMain}};
  repo.commits[kMain] = {{"f.txt", {"gated"}}};
  hub.add_repo("org/gated", repo);
  auto o = options();
  for (const std::string token : {"", FakeHub::kNoAccessToken}) {
    o.settings.token = token;
    try {
      hf_hub_download("org/gated", "f.txt", o);
      FAIL() << "expected GatedRepo";
    } catch (const HubError& e) {
      EXPECT_EQ(e.kind(), HubErrorKind::GatedRepo) << e.what();
      EXPECT_NE(std::string(e.what()).find("request access"), std::string::npos) << e.what();
    }
  }
  o.settings.token = FakeHub::kGoodToken;
  EXPECT_EQ(read(hf_hub_download("org/gated", "f.txt", o)), "gated");
}

TEST_F(HubDownload, MissingFileAndRevisionAreTypedAndMarked) {
  try {
    hf_hub_download("org/adapter", "nope.bin", options());
    FAIL();
  } catch (const HubError& e) {
    EXPECT_EQ(e.kind(), HubErrorKind::EntryNotFound) << e.what();
  }
  EXPECT_EQ(tree(cache / repo_folder),
            (std::set<std::string>{".no_exist/", ".no_exist/" + kMain + "/",
                                   ".no_exist/" + kMain + "/nope.bin 0644 0", "refs/",
                                   "refs/main 0644 40"}));
  try {
    hf_hub_download("org/adapter", "adapter_config.json", options("nobranch"));
    FAIL();
  } catch (const HubError& e) {
    EXPECT_EQ(e.kind(), HubErrorKind::RevisionNotFound) << e.what();
  }
  try {
    snapshot_download("nobody/nothing", options());
    FAIL();
  } catch (const HubError& e) {
    EXPECT_EQ(e.kind(), HubErrorKind::RepoNotFound) << e.what();
  }
}

TEST_F(HubDownload, ConnectionCutResumesWithARange) {
  hub.set_faults(weights, Faults{.cut_times = 1, .cut_after = 100000});
  const fs::path path = hf_hub_download("org/adapter", "adapter_model.safetensors", options());
  EXPECT_EQ(read(path), weights);
  bool resumed = false;
  for (const auto& r : hub.log()) resumed |= r.range == "bytes=100000-";
  EXPECT_TRUE(resumed);
  EXPECT_EQ(hub.body_bytes(), weights.size());  // nothing fetched twice
  EXPECT_FALSE(fs::exists(cache / repo_folder / "blobs" / (sha256_hex(weights) + ".incomplete")));
}

TEST_F(HubDownload, ServerErrorThenSuccess) {
  hub.set_faults(weights, Faults{.error_times = 2});
  EXPECT_EQ(read(hf_hub_download("org/adapter", "adapter_model.safetensors", options())), weights);
}

TEST_F(HubDownload, SlowResponsePastTheTimeoutIsRetriedThenRefused) {
  hub.set_faults(weights, Faults{.slow_times = 1, .slow_seconds = 2.5});
  EXPECT_EQ(read(hf_hub_download("org/adapter", "adapter_model.safetensors", options())), weights);

  testing::TempDir other;
  auto o = options();
  o.settings.cache_dir = other.path();
  o.settings.max_retries = 1;
  hub.set_faults(weights, Faults{.slow_times = 2, .slow_seconds = 3});
  const auto start = std::chrono::steady_clock::now();
  try {
    hf_hub_download("org/adapter", "adapter_model.safetensors", o);
    FAIL();
  } catch (const HubError& e) {
    EXPECT_EQ(e.kind(), HubErrorKind::Network) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_FALSE(
      fs::exists(other.path() / repo_folder / "snapshots" / kMain / "adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(other.path() / repo_folder / "blobs" / sha256_hex(weights)));
}

TEST_F(HubDownload, CorruptBlobNeverEntersTheCache) {
  hub.set_faults(weights, Faults{.corrupt = true});
  try {
    hf_hub_download("org/adapter", "adapter_model.safetensors", options());
    FAIL();
  } catch (const HubError& e) {
    EXPECT_EQ(e.kind(), HubErrorKind::Integrity) << e.what();
  }
  const fs::path blobs = cache / repo_folder / "blobs";
  EXPECT_TRUE(fs::is_empty(blobs)) << "no blob, no .incomplete";
  EXPECT_FALSE(fs::exists(cache / repo_folder / "snapshots"));
}

TEST_F(HubDownload, SiblingThatEscapesTheSnapshotIsRefused) {
  FakeRepo repo;
  repo.refs = {{"main", kMain}};
  repo.commits[kMain] = {{"ok.txt", {"ok"}}};
  repo.extra_siblings = {"../../evil"};
  hub.add_repo("org/evil", repo);
  try {
    snapshot_download("org/evil", options());
    FAIL();
  } catch (const HubError& e) {
    EXPECT_EQ(e.kind(), HubErrorKind::Protocol) << e.what();
    EXPECT_NE(std::string(e.what()).find("../../evil"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(cache / "models--org--evil"));
  EXPECT_FALSE(fs::exists(cache / "evil"));
  EXPECT_FALSE(fs::exists(dir / "evil"));
}

TEST_F(HubDownload, OfflineUsesTheCacheWithoutARequest) {
  const fs::path snapshot = snapshot_download("org/adapter", options());
  hub.clear_log();
  auto o = options();
  o.settings.offline = true;
  EXPECT_EQ(snapshot_download("org/adapter", o), snapshot);
  EXPECT_EQ(hf_hub_download("org/adapter", "adapter_config.json", o),
            snapshot / "adapter_config.json");
  EXPECT_TRUE(hub.log().empty());
  try {
    hf_hub_download("org/adapter", "adapter_config.json", [&] {
      auto t = o;
      t.revision = "v1.0";
      return t;
    }());
    FAIL();
  } catch (const HubError& e) {
    EXPECT_EQ(e.kind(), HubErrorKind::Offline);
    EXPECT_NE(std::string(e.what()).find("HF_HUB_OFFLINE"), std::string::npos) << e.what();
  }
  // The Hub unreachable: the cache answers, as huggingface_hub falls back to it.
  o.settings.offline = false;
  o.settings.endpoint = "http://127.0.0.1:1";
  o.settings.max_retries = 0;
  EXPECT_EQ(hf_hub_download("org/adapter", "adapter_config.json", o),
            snapshot / "adapter_config.json");
  EXPECT_EQ(snapshot_download("org/adapter", o), snapshot);
}

TEST_F(HubDownload, ThreadsDownloadingTheSameFileEndWithOneBlob) {
  std::vector<std::jthread> threads;
  threads.reserve(4);
  for (int i = 0; i < 4; ++i)
    threads.emplace_back(
        [&] { hf_hub_download("org/adapter", "adapter_model.safetensors", options()); });
  threads.clear();
  EXPECT_EQ(read(cache / repo_folder / "snapshots" / kMain / "adapter_model.safetensors"), weights);
  EXPECT_EQ(hub.body_bytes(), weights.size());  // the lock made the others wait, not fetch
}

TEST_F(HubDownload, AdapterLoadingDownloadsWhatIsNotCached) {
  AdapterLocation location;
  location.cache_dir = cache;
  ::setenv("HF_ENDPOINT", hub.endpoint().c_str(), 1);
  ::unsetenv("HF_HUB_OFFLINE");
  const fs::path file = resolve_adapter_file("org/adapter", "adapter_config.json", location);
  EXPECT_EQ(read(file), config);
  const fs::path folder = resolve_adapter_folder("org/adapter@v1.0", location);
  EXPECT_EQ(read(folder / "adapter_config.json"), config_v1);
  ::unsetenv("HF_ENDPOINT");
}

// The command line: the path as the last line, errors as one line with exit status 1, and
// two processes downloading the same repository at once.
struct HubCli : Fixture {
  testing::CommandResult download(const std::vector<std::string>& args,
                                  const std::vector<std::string>& env = {}) const {
    std::vector<std::string> argv{"/usr/bin/env", "HF_ENDPOINT=" + hub.endpoint(),
                                  "HF_HUB_CACHE=" + cache.string(),
                                  "HF_TOKEN=", "HF_HOME=" + (dir / "home").string()};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {testing::peftcpp_binary().string(), "download"});
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::run_command(argv);
  }
};

TEST_F(HubCli, PrintsThePathAsTheLastLine) {
  auto r = download({"org/adapter", "adapter_config.json", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            (cache / repo_folder / "snapshots" / kMain / "adapter_config.json").string() + "\n");
  r = download({"org/adapter", "--include", "*.json", "--revision", "v1.0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, (cache / repo_folder / "snapshots" / kTag).string() + "\n");
  EXPECT_EQ(r.err, "");  // stderr is not a terminal: no progress
}

TEST_F(HubCli, ErrorIsOneLineAndExitsOne) {
  const auto r = download({"org/adapter", "missing.txt"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("entry_not_found"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(cache / repo_folder / "snapshots"));  // only the .no_exist marker
}

// libcurl and libcrypto are loaded by the first download (hub/net_libs.hpp), not at start-up.
TEST_F(HubCli, DownloadLoadsLibcurlOnFirstUse) {
  const auto r = download({"org/adapter", "adapter_config.json", "--quiet"}, {"LD_DEBUG=files"});
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(r.err.size() > 2000 ? r.err.size() - 2000 : 0);
  EXPECT_NE(r.err.find("libcurl.so"), std::string::npos);
  EXPECT_NE(r.err.find("libcrypto.so"), std::string::npos);
}

TEST_F(HubCli, MissingLibcurlIsAClearError) {
  const std::string missing = (dir / "no-such-dir" / "libcurl.so.4").string();
  const auto r =
      download({"org/adapter", "adapter_config.json"}, {"PEFTCPP_CURL_LIBRARY=" + missing});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("PEFTCPP_CURL_LIBRARY"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("libcurl4"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(cache / repo_folder / "snapshots"));
}

TEST_F(HubCli, TwoProcessesAtOnceEndWithOneCorrectCache) {
  testing::CommandResult a, b;
  {
    std::jthread first([&] { a = download({"org/adapter", "--quiet"}); });
    std::jthread second([&] { b = download({"org/adapter", "--quiet"}); });
  }
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  const fs::path snapshot = cache / repo_folder / "snapshots" / kMain;
  EXPECT_EQ(read(snapshot / "adapter_model.safetensors"), weights);
  for (const auto& entry : tree(cache / repo_folder / "blobs"))
    EXPECT_EQ(entry.find(".incomplete"), std::string::npos) << entry;
}

// Every file of a local folder as a repository commit; .safetensors files as large (LFS) files.
std::map<std::string, FakeFile> files_of(const fs::path& folder) {
  std::map<std::string, FakeFile> out;
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    if (!entry.is_regular_file()) continue;
    const std::string rel = entry.path().lexically_relative(folder).string();
    out[rel] = FakeFile{testing::read_text(entry.path()), rel.ends_with(".safetensors")};
  }
  return out;
}

TEST_F(HubCli, MergeFromAnEmptyCacheDownloadsBaseAndAdapter) {
  const StateDict state = testing::synthetic_state({.layers = 2, .hidden = 16, .intermediate = 24});
  const MergeAdapter lora = testing::synthetic_lora(state, {"q_proj", "v_proj"}, 4, 8, 1);
  save_checkpoint(state, dir / "base", state.total_bytes() / 2);  // sharded, with an index
  testing::write_model_config(dir / "base", false);
  testing::save_adapter(lora, dir / "lora");
  for (const auto& [id, folder] : {std::pair{"org/base", "base"}, std::pair{"org/lora", "lora"}}) {
    FakeRepo repo;
    repo.refs = {{"main", kMain}};
    repo.commits[kMain] = files_of(dir / folder);
    hub.add_repo(id, repo);
  }
  const auto peftcpp = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv{
        "/usr/bin/env", "HF_ENDPOINT=" + hub.endpoint(),      "HF_HUB_CACHE=" + cache.string(),
        "HF_TOKEN=",    "HF_HOME=" + (dir / "home").string(), testing::peftcpp_binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::run_command(argv);
  };
  auto r = peftcpp({"merge", "--base", "org/base", "--adapter", "org/lora", "--out",
                    (dir / "from-hub").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = peftcpp({"merge", "--base", (dir / "base").string(), "--adapter", (dir / "lora").string(),
               "--out", (dir / "local").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const StateDict ours = load_checkpoint(open_checkpoint((dir / "from-hub").string()));
  const StateDict expected = load_checkpoint(open_checkpoint((dir / "local").string()));
  ASSERT_EQ(ours.size(), expected.size());
  for (const auto& [key, want] : expected) EXPECT_TRUE(ours.at(key).equals(want)) << key;
  // Offline now: the same merge from the cache alone, without a request.
  std::vector<std::string> argv{"/usr/bin/env",
                                "HF_HUB_OFFLINE=1",
                                "HF_ENDPOINT=" + hub.endpoint(),
                                "HF_HUB_CACHE=" + cache.string(),
                                testing::peftcpp_binary().string(),
                                "merge",
                                "--base",
                                "org/base",
                                "--adapter",
                                "org/lora",
                                "--out",
                                (dir / "offline").string()};
  hub.clear_log();
  r = testing::run_command(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(hub.log().empty());
}

// The pure parts of the protocol.
TEST(HubProtocol, HeadersAndUrls) {
  EXPECT_EQ(hub::normalize_etag("W/\"abc\""), "abc");
  EXPECT_EQ(hub::normalize_etag("\"abc\""), "abc");
  hub::HttpHeaders h;
  h.fields = {{"x-repo-commit", kMain},
              {"etag", "\"e1\""},
              {"x-linked-etag", "\"e2\""},
              {"content-length", "5"},
              {"x-linked-size", "7"}};
  const auto meta = hub::parse_file_metadata(h);
  EXPECT_EQ(meta.etag, "e2");
  EXPECT_EQ(meta.size, 7U);
  EXPECT_EQ(hub::content_range_start("bytes 10-19/20"), 10U);
  EXPECT_EQ(hub::content_range_start("bytes 10-19/*"), 10U);
  EXPECT_FALSE(hub::content_range_start("bytes 19-10/20"));
  EXPECT_FALSE(hub::content_range_start("items 1-2/3"));
  EXPECT_EQ(hub::url_quote("refs/pr/1", ""), "refs%2Fpr%2F1");
  EXPECT_EQ(hub::url_quote("sub/a b+c.txt", "/"), "sub/a%20b%2Bc.txt");
  EXPECT_EQ(hub::resolve_url("http://h:1/a/b/c?x", "/d"), "http://h:1/d");
  EXPECT_EQ(hub::resolve_url("http://h:1/a/b/c", "d"), "http://h:1/a/b/d");
  EXPECT_EQ(hub::resolve_url("https://h/a", "//cdn/x"), "https://cdn/x");
  EXPECT_EQ(hub::url_authority("http://user@Host:8/x"), "host:8");
  EXPECT_TRUE(hub::is_relative_location("/org/renamed/resolve/main/x"));
  EXPECT_FALSE(hub::is_relative_location("https://cdn/x"));
  for (const char* bad : {"../x", "/abs", "a/../b", "a//b", "a/./b", "", "a\\b", "a/"})
    EXPECT_FALSE(hub::is_safe_repo_path(bad)) << bad;
  EXPECT_TRUE(hub::is_safe_repo_path("sub/dir/a b.txt"));
  EXPECT_FALSE(hub::is_safe_etag("../x"));
}

TEST(HubProtocol, RevisionJson) {
  const auto info = hub::parse_revision_info(
      R"({"sha":")" + kMain + R"(","siblings":[{"rfilename":"a"},{"rfilename":"b/c"}]})", "x");
  EXPECT_EQ(info.sha, kMain);
  EXPECT_EQ(info.files, (std::vector<std::string>{"a", "b/c"}));
  for (const char* bad : {"[]", "{}", "{\"sha\":1}", "{\"sha\":\"x\",\"siblings\":[{}]}", "{"})
    EXPECT_THROW(hub::parse_revision_info(bad, "x"), HubError) << bad;
}

TEST(HubProtocol, FnmatchLikePython) {
  EXPECT_TRUE(fnmatch_case("a/b/c.json", "*.json"));  // '*' crosses '/'
  EXPECT_TRUE(fnmatch_case("sub/x", "sub/*"));
  EXPECT_FALSE(fnmatch_case("Sub/x", "sub/*"));
  EXPECT_TRUE(fnmatch_case("model-00001.safetensors", "model-0000[0-9].safetensors"));
  EXPECT_TRUE(fnmatch_case("ab", "a[!c]"));
  EXPECT_FALSE(fnmatch_case("ac", "a[!c]"));
  EXPECT_TRUE(fnmatch_case("a]", "a[]]"));
  EXPECT_TRUE(fnmatch_case("a[", "a["));  // an unclosed '[' is literal
  EXPECT_TRUE(fnmatch_case("abc", "a?c"));
  EXPECT_FALSE(fnmatch_case("abcd", "a?c"));
  EXPECT_TRUE(fnmatch_case("", "*"));
}

TEST(HubProtocol, Sha256KnownAnswers) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  hub::Sha256 split;  // fed in odd pieces across block boundaries
  const std::string text(1000, 'a');
  for (std::size_t i = 0; i < text.size(); i += 37)
    split.update(std::string_view(text).substr(i, 37));
  EXPECT_EQ(split.hex_digest(), sha256_hex(text));
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace peft
