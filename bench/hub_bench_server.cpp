// A local stand-in for the Hub serving one large file, for scripts/bench_hub_download.sh:
//   hub_bench_server FILE SHA256 REPO_ID COMMIT
// prints its port, then answers HEAD/GET {repo}/resolve/{rev}/{name} with the Hub's headers
// and a redirect to /lfs/{sha256} on "localhost", which streams FILE with pread.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <httplib.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s FILE SHA256 REPO_ID COMMIT\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1], sha = argv[2], repo = argv[3], commit = argv[4];
  const int fd = ::open(path.c_str(), O_RDONLY);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    std::perror(path.c_str());
    return 1;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  httplib::Server server;
  int port = 0;
  server.Get(
      "/" + repo + "/resolve/([^/]+)/(.*)", [&](const httplib::Request&, httplib::Response& res) {
        res.status = 302;
        res.set_header("Location", "http://localhost:" + std::to_string(port) + "/lfs/" + sha);
        res.set_header("X-Repo-Commit", commit);
        res.set_header("X-Linked-Etag", "\"" + sha + "\"");
        res.set_header("X-Linked-Size", std::to_string(size));
        res.set_header("ETag", "\"" + sha.substr(0, 40) + "\"");
      });
  server.Get("/lfs/" + sha, [&](const httplib::Request&, httplib::Response& res) {
    res.set_content_provider(size, "application/octet-stream",
                             [fd](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                               static thread_local std::string buffer(1U << 20, '\0');
                               const std::size_t n = std::min(length, buffer.size());
                               const ssize_t got =
                                   ::pread(fd, buffer.data(), n, static_cast<off_t>(offset));
                               if (got <= 0) return false;
                               sink.write(buffer.data(), static_cast<std::size_t>(got));
                               return true;
                             });
  });
  port = server.bind_to_any_port("127.0.0.1");
  std::printf("%d\n", port);
  std::fflush(stdout);
  server.listen_after_bind();
  return 0;
}
