// The entries huggingface_hub writes into a repository's cache folder, each written so
// that a concurrent reader never sees half of it.
#pragma once

#include <filesystem>
#include <string>

namespace peft::hub {

// refs/<revision> holding `commit` (no newline), unless `revision` is a commit itself or
// the ref already says so.
void write_ref(const std::filesystem::path& repo_folder, const std::string& revision,
               const std::string& commit);

// snapshots/<commit>/<path> as a relative symlink to blobs/<etag> ("../../blobs/<etag>",
// one more "../" per sub folder), replacing what is there.
void link_pointer(const std::filesystem::path& repo_folder, const std::string& commit,
                  const std::string& path, const std::string& etag);

// An empty .no_exist/<commit>/<path>: the Hub said this file does not exist there.
void write_no_exist(const std::filesystem::path& repo_folder, const std::string& commit,
                    const std::string& path);

// <cache>/CACHEDIR.TAG (the Cache Directory Tagging Specification's signature line, so that
// backup tools skip the cache), unless there is one; failures are ignored, as huggingface_hub
// 1.x ignores them. huggingface_hub writes it on every download whose metadata the Hub gave.
void write_cachedir_tag(const std::filesystem::path& cache_dir);

// Gives `file` the permissions a new file gets in `folder` (0666 minus the umask, as
// huggingface_hub derives them from a probe file) and renames it to `target`.
void chmod_and_move(const std::filesystem::path& file, const std::filesystem::path& target);

}  // namespace peft::hub
