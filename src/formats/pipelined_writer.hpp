// Appends to an AtomicFile on a second thread, in order, while the caller prepares what comes
// next: on two cores the kernel's copy into the page cache then overlaps the caller's reading
// and converting (export-gguf: bench/gguf_export_vs_copy.sh). The caller fills one of two
// reusable buffers, hands it over and fills the other; it waits only when both are queued.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <span>
#include <thread>

#include "formats/atomic_file.hpp"
#include "formats/scratch_buffer.hpp"

namespace peft::formats {

class PipelinedWriter {
 public:
  // `file` must outlive the writer. `capacity`: the size each of the two buffers is given
  // up front (a larger request reallocates that buffer).
  PipelinedWriter(AtomicFile& file, std::size_t capacity);
  // Stops the thread; what was queued and not yet written is dropped (the caller, unwinding,
  // leaves the AtomicFile uncommitted).
  ~PipelinedWriter();
  PipelinedWriter(const PipelinedWriter&) = delete;
  PipelinedWriter& operator=(const PipelinedWriter&) = delete;

  // The next free buffer, `n` bytes, uninitialised; valid until the matching submit().
  std::span<std::byte> buffer(std::size_t n);
  // Queues the buffer last returned by buffer() (its first `n` bytes), then `pad`.
  void submit(std::size_t n, std::span<const std::byte> pad);
  // Queues bytes that stay valid until finish() (a mapping, a tensor), then `pad`.
  void submit_external(std::span<const std::byte> bytes, std::span<const std::byte> pad);
  // Waits until everything queued is written; rethrows the writing thread's error.
  void finish();

 private:
  struct Job;
  struct Slot {
    ScratchBuffer buffer;
    std::span<std::byte> taken;  // what buffer() last handed out
    std::uint64_t last_job = 0;  // the job that reads it (0: none)
  };

  void enqueue(const Job& job);
  void run();
  void wait_for(std::uint64_t job, std::unique_lock<std::mutex>& lock);

  AtomicFile& file_;
  Slot slots_[2];
  int current_ = 0;  // the slot buffer() hands out next
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Job> queue_;
  std::uint64_t submitted_ = 0, written_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace peft::formats
