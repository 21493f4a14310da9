// Streaming a checkpoint through a merge (or unmerge): output shard by output shard, the
// input shards it needs mapped, changed tensors computed by worker threads, every tensor
// written in file order by the calling thread, the shard committed, the mappings released.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>

#include "checkpoint/buffer_pool.hpp"
#include "checkpoint/checkpoint_output.hpp"
#include "checkpoint/checkpoint_shard_file.hpp"
#include "checkpoint/shard_plan.hpp"
#include "formats/mapped_file.hpp"
#include "merge/dense.hpp"
#include "merge/shared_bases.hpp"
#include "peft/checkpoint.hpp"
#include "peft/error.hpp"
#include "peft/safetensors.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

enum class Direction { Merge, Unmerge };

// One tensor of the input, in state-dict order, with what it becomes.
struct Item {
  std::string name;
  std::size_t input_shard = 0;
  DType out_dtype;
  Shape shape;
  std::uint64_t out_bytes = 0;
  bool cast = false;
  bool touched = false;
  bool fused = false;  // merged by the fused float32 path into a pooled buffer
  // Unchanged bytes of a safetensors shard at this file offset: copied by the kernel.
  std::optional<std::uint64_t> copy_offset;
};

struct OutputShard {
  std::string file_name;
  std::vector<std::size_t> items;  // indices into the item list
  std::optional<Metadata> metadata;
};

// Runs produce(i) for every i and consume(i, value) on the calling thread in index order.
// With `threads` >= 2 the calling thread consumes (it writes, a large share of the work) and
// produces only while it would otherwise wait; threads - 1 workers produce, so that no more
// threads run than were asked for:
// on two cores, two workers plus the writer made the merge slower than one thread. A
// worker starts item i only while at most `threads` results wait for the consumer and the
// items in flight cost at most `budget` (cost(i) estimates the memory item i needs until
// it is consumed); an item may always start when nothing is in flight. With one thread
// everything runs on the calling thread.
void ordered_pipeline(std::size_t n, unsigned threads, std::uint64_t budget,
                      const std::function<std::uint64_t(std::size_t)>& cost,
                      const std::function<Tensor(std::size_t)>& produce,
                      const std::function<void(std::size_t, Tensor)>& consume) {
  if (threads <= 1) {
    for (std::size_t i = 0; i < n; ++i) consume(i, produce(i));
    return;
  }
  struct Slot {
    std::optional<Tensor> value;
    std::exception_ptr error;
    bool done = false;
  };
  std::vector<Slot> slots(n);
  std::mutex mutex;
  std::condition_variable changed;
  std::size_t next = 0, consumed = 0;
  std::uint64_t in_flight = 0;
  bool stop = false;
  const auto may_start = [&] {
    if (next >= consumed + threads) return false;
    return in_flight == 0 || in_flight + cost(next) <= budget;
  };
  // Produces item i (already claimed) into its slot.
  const auto run = [&](std::size_t i) {
    Slot slot;
    try {
      slot.value = produce(i);
    } catch (...) {
      slot.error = std::current_exception();
    }
    slot.done = true;
    {
      std::lock_guard lock(mutex);
      slots[i] = std::move(slot);
    }
    changed.notify_all();
  };
  auto worker = [&] {
    while (true) {
      std::size_t i = 0;
      {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return stop || next >= n || may_start(); });
        if (stop || next >= n) return;
        i = next++;
        in_flight += cost(i);
      }
      run(i);
    }
  };
  std::vector<std::thread> workers;
  auto finish = [&] {
    {
      std::lock_guard lock(mutex);
      stop = true;
    }
    changed.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
  };
  try {
    for (unsigned t = 0; t + 1 < threads; ++t) workers.emplace_back(worker);
    for (std::size_t i = 0; i < n; ++i) {
      Tensor value;
      {
        std::unique_lock lock(mutex);
        // Waiting for item i, the calling thread produces the next items itself (streamed
        // merges leave it nothing to write), within the same window and budget.
        while (!slots[i].done) {
          if (next < n && may_start()) {
            const std::size_t j = next++;
            in_flight += cost(j);
            lock.unlock();
            run(j);
            lock.lock();
          } else {
            changed.wait(lock, [&] { return slots[i].done || (next < n && may_start()); });
          }
        }
        if (slots[i].error) std::rethrow_exception(slots[i].error);
        value = std::move(*slots[i].value);
        slots[i].value.reset();
        consumed = i + 1;
      }
      changed.notify_all();
      consume(i, std::move(value));
      value = Tensor();  // its buffer is released before the budget says so
      {
        std::lock_guard lock(mutex);
        in_flight -= cost(i);
      }
      changed.notify_all();
    }
  } catch (...) {
    finish();
    throw;
  }
  finish();
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < 10; ++i) {
    out += fmt::format("{}'{}'", i ? ", " : "", names[i]);
  }
  if (names.size() > 10) out += fmt::format(" and {} more", names.size() - 10);
  return out;
}

std::vector<Item> list_items(const CheckpointLayout& layout, std::optional<DType> dtype,
                             const PreparedMerge& prepared) {
  std::vector<Item> items;
  items.reserve(layout.tensor_count());
  for (std::size_t s = 0; s < layout.shards.size(); ++s) {
    const auto file = detail::ShardFile::open(layout.shards[s].path);
    for (const auto& name : layout.shards[s].names) {
      const detail::ShardTensorInfo* info = file.info(name);
      Item item;
      item.name = name;
      item.input_shard = s;
      item.shape = info->shape;
      item.cast =
          dtype && *dtype != info->dtype && is_floating(info->dtype) && is_convertible(info->dtype);
      item.out_dtype = item.cast ? *dtype : info->dtype;
      item.out_bytes = byte_size(item.out_dtype, item.shape);
      item.touched = prepared.touches(name);
      item.fused = item.touched && prepared.merges_fused(name, item.out_dtype, item.shape);
      if (!item.touched && !item.cast) item.copy_offset = file.file_offset(name);
      items.push_back(std::move(item));
    }
  }
  return items;
}

std::vector<OutputShard> plan_output(const CheckpointLayout& layout, const std::vector<Item>& items,
                                     const CheckpointWriteOptions& write) {
  std::vector<std::vector<std::size_t>> groups;
  if (write.max_shard_size) {
    std::vector<std::uint64_t> sizes;
    sizes.reserve(items.size());
    for (const auto& item : items) sizes.push_back(item.out_bytes);
    groups = plan_shards(sizes, *write.max_shard_size);
  } else {
    groups.resize(layout.shards.size());
    for (std::size_t i = 0; i < items.size(); ++i) groups[items[i].input_shard].push_back(i);
  }
  if (groups.empty()) groups.emplace_back();
  std::vector<OutputShard> out;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    OutputShard shard;
    shard.file_name = shard_file_name(g, groups.size());
    shard.items = std::move(groups[g]);
    // Kept boundaries keep the shard's metadata; new shards get what save_pretrained writes.
    if (!write.max_shard_size) {
      shard.metadata = layout.shards[g].metadata;
    } else {
      shard.metadata = Metadata{{"format", "pt"}};
    }
    out.push_back(std::move(shard));
  }
  return out;
}

class CheckpointStream {
 public:
  CheckpointStream(const CheckpointLayout& layout, const PreparedMerge& prepared,
                   Direction direction, const CheckpointWriteOptions& write)
      : layout_(layout), prepared_(prepared), direction_(direction), write_(write) {
    threads_ = write.threads ? write.threads : std::max(1u, std::thread::hardware_concurrency());
    budget_ = write.memory_budget;
    for (const auto& shard : layout.shards) {
      if (!write.memory_budget) budget_ = std::max(budget_, shard.bytes);
    }
  }

  CheckpointWriteResult run(const fs::path& out_dir) {
    items_ = list_items(layout_, write_.dtype, prepared_);
    check_present();
    auto folder = detail::prepare_output_folder(out_dir, &layout_, write_.force);
    const auto shards = plan_output(layout_, items_, write_);
    progress_.tensors_total = items_.size();
    for (const auto& item : items_) progress_.bytes_total += item.out_bytes;

    CheckpointWriteResult result;
    std::vector<std::pair<std::string, std::string>> weight_map;
    for (const auto& shard : shards) {
      write_shard(shard, out_dir / shard.file_name);
      result.files.push_back(shard.file_name);
      for (std::size_t i : shard.items) weight_map.emplace_back(items_[i].name, shard.file_name);
    }
    if (shards.size() > 1) {
      const std::string index = "model.safetensors.index.json";
      formats::write_file_atomically(
          out_dir / index,
          checkpoint_index_json(weight_map, progress_.bytes_total, layout_.total_parameters),
          write_.durable);
      result.files.push_back(index);
    }
    detail::remove_stale_weights(out_dir, result.files);
    if (write_.copy_non_weight_files) {
      result.copied = detail::copy_non_weight_files(layout_, out_dir, write_.dtype, write_.durable);
    }
    result.tensors = items_.size();
    result.changed = static_cast<std::size_t>(
        std::count_if(items_.begin(), items_.end(), [](const Item& i) { return i.touched; }));
    result.bytes = progress_.bytes_total;
    result.warnings = layout_.warnings;
    folder.commit();
    return result;
  }

 private:
  // Every tensor an adapter changes must be somewhere: checked before anything is written.
  void check_present() const {
    std::vector<std::string> names;
    names.reserve(items_.size());
    for (const auto& item : items_) names.push_back(item.name);
    const auto missing = prepared_.missing_keys(names);
    if (missing.empty()) return;
    throw Error(ErrorCode::MissingKey, layout_.source,
                fmt::format("the adapter changes {} tensors that no shard of the checkpoint "
                            "holds: {}{}",
                            missing.size(), quoted_list(missing),
                            missing.front().ends_with(".bias")
                                ? " (a lora_bias or bias update needs a base layer with a bias)"
                                : ""));
  }

  // Maps the input shards `shard` draws from, releasing the others.
  void open_inputs(const OutputShard& shard) {
    std::unordered_set<std::size_t> needed;
    for (std::size_t i : shard.items) needed.insert(items_[i].input_shard);
    for (auto it = open_.begin(); it != open_.end();) {
      it = needed.count(it->first) ? std::next(it) : open_.erase(it);
    }
    for (auto it = fds_.begin(); it != fds_.end();) {
      it = needed.count(it->first) ? std::next(it) : fds_.erase(it);
    }
    for (std::size_t s : needed) {
      if (!open_.count(s)) open_.emplace(s, detail::ShardFile::open(layout_.shards[s].path));
      if (!fds_.count(s)) fds_.emplace(s, InputFd(layout_.shards[s].path));
    }
  }

  // What a tensor holds in anonymous memory until it is written: untouched ones are views
  // of the mapping; the fused path writes into a pooled buffer of the result's size (its
  // tile is per thread and small); other merges work on float64 copies (the values, the
  // delta and its layout copy), about 3 x 8 bytes per element on top of the result.
  std::uint64_t cost(const Item& item) const {
    if (streams(item)) return kStreamChunk;
    if (!item.touched) return item.cast ? item.out_bytes : 0;
    if (item.fused && direction_ == Direction::Merge) return item.out_bytes;
    return shape_numel(item.shape) * 24 + item.out_bytes;
  }

  // Fused LoRA merges stream: a few blocks of rows at a time are read from the input file
  // into a small per-thread buffer, merged there and written at their place in the output
  // (pwrite), so that each byte crosses memory once each way, as in a plain copy.
  static constexpr std::uint64_t kStreamChunk = std::uint64_t{512} << 10;

  bool streams(const Item& item) const {
    return item.fused && direction_ == Direction::Merge && !item.cast && !item.copy_offset;
  }

  void stream_fused(const Item& item, const detail::ShardWriter& writer, std::size_t k) const {
    const detail::ShardFile& file = open_.at(item.input_shard);
    const Tensor tensor = file.tensor(item.name);  // a view of the mapping, not touched
    try {
      const std::span<const std::byte> in = tensor.bytes();
      const std::uint64_t row_bytes = item.shape.empty() ? in.size() : in.size() / item.shape[0];
      const std::uint64_t block =
          prepared_.fused_row_block(item.name, item.out_dtype, item.shape) * row_bytes;
      const std::uint64_t chunk = std::max<std::uint64_t>(1, kStreamChunk / block) * block;
      thread_local std::vector<std::byte> buffer;
      if (buffer.size() < chunk) buffer.resize(chunk);
      for (std::uint64_t offset = 0; offset < in.size(); offset += chunk) {
        const auto n = static_cast<std::size_t>(std::min(chunk, in.size() - offset));
        const std::span<std::byte> rows(buffer.data(), n);
        const auto part = in.subspan(offset, n);
        if (!formats::read_mapped(part, rows)) std::memcpy(rows.data(), part.data(), n);
        prepared_.merge_rows_in_place(item.name, item.out_dtype, item.shape, offset / row_bytes,
                                      rows);
        writer.write_part(k, offset, rows);
      }
    } catch (const Error& e) {
      if (!e.source().empty()) throw;
      throw Error(e.code(), file.source(), e.detail());
    }
  }

  Tensor produce(const Item& item) const {
    if (item.copy_offset) return {};  // the writer copies it from the file
    const detail::ShardFile& file = open_.at(item.input_shard);
    Tensor tensor = file.tensor(item.name);  // a view of the mapping
    try {
      if (item.cast) tensor = tensor.to(item.out_dtype);
      if (!item.touched) return tensor;
      if (direction_ == Direction::Unmerge) return prepared_.unmerge_tensor(item.name, tensor);
      if (!item.fused) return prepared_.merge_tensor(item.name, tensor);
      auto lease = pool_->acquire(item.out_dtype, item.shape);
      prepared_.merge_tensor_into(item.name, tensor, lease.bytes);
      return std::move(lease.tensor);
    } catch (const Error& e) {
      if (!e.source().empty()) throw;
      throw Error(e.code(), file.source(), e.detail());
    }
  }

  void write_shard(const OutputShard& shard, const fs::path& path) {
    open_inputs(shard);
    std::vector<detail::ShardEntry> entries;
    std::unordered_map<std::string_view, std::size_t> item_of;
    for (std::size_t i : shard.items) {
      const Item& item = items_[i];
      entries.push_back({item.name, item.out_dtype, item.shape, item.out_bytes});
      item_of.emplace(item.name, i);
    }
    detail::ShardWriter writer(path, detail::writer_order(std::move(entries)), shard.metadata,
                               write_.durable);
    std::vector<const Item*> order;
    for (const auto& entry : writer.entries()) order.push_back(&items_[item_of.at(entry.name)]);
    ordered_pipeline(
        order.size(), threads_, budget_, [&](std::size_t k) { return cost(*order[k]); },
        [&](std::size_t k) {
          if (!streams(*order[k])) return produce(*order[k]);
          stream_fused(*order[k], writer, k);
          return Tensor();
        },
        [&](std::size_t k, const Tensor& tensor) {
          const Item& item = *order[k];
          if (streams(item)) {
            writer.skip(k);
          } else if (item.copy_offset) {
            writer.copy(k, fds_.at(item.input_shard).fd, *item.copy_offset,
                        layout_.shards[item.input_shard].path.string());
          } else {
            writer.write(k, tensor.bytes());
          }
          ++progress_.tensors_done;
          progress_.bytes_done += item.out_bytes;
          if (write_.progress) write_.progress(progress_);
        });
    writer.commit();
  }

  const CheckpointLayout& layout_;
  const PreparedMerge& prepared_;
  Direction direction_;
  const CheckpointWriteOptions& write_;
  unsigned threads_ = 1;
  std::uint64_t budget_ = 0;
  std::vector<Item> items_;
  std::map<std::size_t, detail::ShardFile> open_;
  // Read descriptors of the same shards, for the kernel copies of unchanged tensors.
  struct InputFd {
    int fd = -1;
    explicit InputFd(const fs::path& path) : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
      if (fd < 0) {
        throw Error(ErrorCode::Io, path.string(),
                    fmt::format("cannot open it again for copying: {}", std::strerror(errno)));
      }
    }
    InputFd(InputFd&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
    InputFd& operator=(InputFd&&) = delete;
    InputFd(const InputFd&) = delete;
    InputFd& operator=(const InputFd&) = delete;
    ~InputFd() {
      if (fd >= 0) ::close(fd);
    }
  };
  std::map<std::size_t, InputFd> fds_;
  // Output buffers of fused merges, reused across tensors and shards.
  std::shared_ptr<detail::BufferPool> pool_ = detail::BufferPool::create();
  CheckpointProgress progress_;
};

// Values PEFT draws at load time and did not save (VeRA and RandLoRA projections), sized
// from the checkpoint's shard headers.
void complete_adapters(std::vector<MergeAdapter>& adapters, const CheckpointLayout& layout) {
  const bool needed = std::any_of(adapters.begin(), adapters.end(), [](const MergeAdapter& a) {
    const PeftType type = a.config.peft_type();
    return (type == PeftType::VERA && !a.weights.contains("base_model.vera_A")) ||
           (type == PeftType::RANDLORA && !a.weights.contains("base_model.randlora_A"));
  });
  if (!needed) return;
  std::unordered_map<std::string, Shape> shapes;
  for (const auto& shard : layout.shards) {
    const auto file = detail::ShardFile::open(shard.path);
    for (const auto& info : file.tensors()) shapes.emplace(info.name, info.shape);
  }
  const BaseShapes lookup = [&](std::string_view key) -> std::optional<Shape> {
    const auto it = shapes.find(std::string(key));
    if (it == shapes.end()) return std::nullopt;
    return it->second;
  };
  for (auto& adapter : adapters) {
    regenerate_vera_projections(adapter, lookup);
    regenerate_randlora_projections(adapter, lookup);
  }
}

CheckpointWriteResult stream(const CheckpointLayout& layout, std::vector<MergeAdapter> adapters,
                             MergeOptions options, const fs::path& out_dir,
                             const CheckpointWriteOptions& write, Direction direction) {
  if (options.tied_keys.empty()) options.tied_keys = tied_weight_keys(layout);
  complete_adapters(adapters, layout);
  const PreparedMerge prepared(std::move(adapters), options);
  const merge::SingleThreadedBlas blas;
  return CheckpointStream(layout, prepared, direction, write).run(out_dir);
}

}  // namespace

CheckpointWriteResult merge_checkpoint(const CheckpointLayout& base,
                                       std::vector<MergeAdapter> adapters,
                                       const MergeOptions& options, const fs::path& out_dir,
                                       const CheckpointWriteOptions& write) {
  return annotate_errors(base.source, [&]() -> CheckpointWriteResult {
    return stream(base, std::move(adapters), options, out_dir, write, Direction::Merge);
  });
}

CheckpointWriteResult merge_checkpoint(const std::string& base_path_or_id,
                                       std::vector<MergeAdapter> adapters,
                                       const MergeOptions& options, const fs::path& out_dir,
                                       const CheckpointWriteOptions& write) {
  return merge_checkpoint(open_checkpoint(base_path_or_id), std::move(adapters), options, out_dir,
                          write);
}

CheckpointWriteResult unmerge_checkpoint(const CheckpointLayout& merged,
                                         std::vector<MergeAdapter> adapters,
                                         const MergeOptions& options, const fs::path& out_dir,
                                         const CheckpointWriteOptions& write) {
  return annotate_errors(merged.source, [&]() -> CheckpointWriteResult {
    return stream(merged, std::move(adapters), options, out_dir, write, Direction::Unmerge);
  });
}

CheckpointWriteResult unmerge_checkpoint(const std::string& merged_path_or_id,
                                         std::vector<MergeAdapter> adapters,
                                         const MergeOptions& options, const fs::path& out_dir,
                                         const CheckpointWriteOptions& write) {
  return unmerge_checkpoint(open_checkpoint(merged_path_or_id), std::move(adapters), options,
                            out_dir, write);
}

CheckpointWriteResult save_checkpoint(const StateDict& state, const fs::path& out_dir,
                                      std::uint64_t max_shard_size,
                                      const CheckpointWriteOptions& options) {
  auto folder = detail::prepare_output_folder(out_dir, nullptr, options.force);
  std::vector<std::uint64_t> sizes;
  std::vector<const StateDict::value_type*> entries;
  for (const auto& entry : state) {
    const DType dtype =
        options.dtype && is_floating(entry.second.dtype()) && is_convertible(entry.second.dtype())
            ? *options.dtype
            : entry.second.dtype();
    sizes.push_back(byte_size(dtype, entry.second.shape()));
    entries.push_back(&entry);
  }
  const auto groups = plan_shards(sizes, max_shard_size);
  CheckpointWriteResult result;
  std::vector<std::pair<std::string, std::string>> weight_map;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const std::string file = shard_file_name(g, groups.size());
    StateDict shard;
    for (std::size_t i : groups[g]) {
      const Tensor& tensor = entries[i]->second;
      const bool cast =
          options.dtype && is_floating(tensor.dtype()) && is_convertible(tensor.dtype());
      shard.set(entries[i]->first, cast ? tensor.to(*options.dtype) : tensor);
      weight_map.emplace_back(entries[i]->first, file);
      result.bytes += sizes[i];
    }
    SafetensorsWriteOptions write;
    write.durable = options.durable;
    save_safetensors(shard, out_dir / file, Metadata{{"format", "pt"}}, write);
    result.files.push_back(file);
    result.tensors += shard.size();
  }
  if (groups.empty()) {
    save_safetensors({}, out_dir / shard_file_name(0, 1), Metadata{{"format", "pt"}});
    result.files.push_back(shard_file_name(0, 1));
  }
  if (groups.size() > 1) {
    formats::write_file_atomically(out_dir / "model.safetensors.index.json",
                                   checkpoint_index_json(weight_map, result.bytes),
                                   options.durable);
    result.files.push_back("model.safetensors.index.json");
  }
  detail::remove_stale_weights(out_dir, result.files);
  folder.commit();
  return result;
}

}  // namespace peft
