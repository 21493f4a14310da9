#include "formats/pipelined_writer.hpp"

#include <array>

namespace peft::formats {

struct PipelinedWriter::Job {
  std::span<const std::byte> bytes;
  std::span<const std::byte> pad;
};

PipelinedWriter::PipelinedWriter(AtomicFile& file, std::size_t capacity) : file_(file) {
  for (Slot& slot : slots_) slot.buffer.take(capacity);
  thread_ = std::thread([this] { run(); });
}

PipelinedWriter::~PipelinedWriter() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void PipelinedWriter::wait_for(std::uint64_t job, std::unique_lock<std::mutex>& lock) {
  changed_.wait(lock, [&] { return written_ >= job || error_; });
  if (error_) std::rethrow_exception(error_);
}

std::span<std::byte> PipelinedWriter::buffer(std::size_t n) {
  Slot& slot = slots_[current_];
  std::unique_lock lock(mutex_);
  wait_for(slot.last_job, lock);  // the writing thread is done with it
  lock.unlock();
  slot.taken = slot.buffer.take(n);
  return slot.taken;
}

void PipelinedWriter::submit(std::size_t n, std::span<const std::byte> pad) {
  Slot& slot = slots_[current_];
  current_ = 1 - current_;
  enqueue(Job{slot.taken.first(n), pad});
  slot.last_job = submitted_;
}

void PipelinedWriter::submit_external(std::span<const std::byte> bytes,
                                      std::span<const std::byte> pad) {
  enqueue(Job{bytes, pad});
}

void PipelinedWriter::enqueue(const Job& job) {
  {
    const std::lock_guard lock(mutex_);
    if (error_) std::rethrow_exception(error_);
    queue_.push_back(job);
    ++submitted_;
  }
  changed_.notify_all();
}

void PipelinedWriter::finish() {
  std::unique_lock lock(mutex_);
  wait_for(submitted_, lock);
}

void PipelinedWriter::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_ || error_) return;
      job = queue_.front();
      queue_.pop_front();
    }
    try {
      const std::array<std::span<const std::byte>, 2> pieces = {job.bytes, job.pad};
      file_.write_all(pieces);
    } catch (...) {
      const std::lock_guard lock(mutex_);
      error_ = std::current_exception();
    }
    {
      const std::lock_guard lock(mutex_);
      ++written_;
    }
    changed_.notify_all();
  }
}

}  // namespace peft::formats
