// distcache — which engine's thread this is, and whether a read() function runs on it.
#ifndef DISTCACHE_DETAIL_CURRENT_ENGINE_HPP
#define DISTCACHE_DETAIL_CURRENT_ENGINE_HPP

#include <utility>

namespace distcache::detail {

/// The engine whose thread this is (io_context threads, fetches and event
/// deliveries on the blocking pool), to refuse blocking calls that would
/// deadlock there.
inline thread_local const void* current_engine = nullptr;

/// Marks the current thread as one of `engine`'s for its lifetime.
class engine_thread_mark {
 public:
  explicit engine_thread_mark(const void* engine) noexcept
      : previous_(std::exchange(current_engine, engine)) {}
  engine_thread_mark(const engine_thread_mark&) = delete;
  engine_thread_mark& operator=(const engine_thread_mark&) = delete;
  ~engine_thread_mark() { current_engine = previous_; }

 private:
  const void* previous_;
};

/// Nonzero while a read() function runs on this thread, possibly on the read
/// side of a shard's lock, where an engine call could wait for itself: the
/// engine refuses every call then (errc::call_inside_read).
inline thread_local int reads_in_progress = 0;

/// Marks the current thread as inside a read() function for its lifetime.
class read_mark {
 public:
  read_mark() noexcept { ++reads_in_progress; }
  read_mark(const read_mark&) = delete;
  read_mark& operator=(const read_mark&) = delete;
  ~read_mark() { --reads_in_progress; }
};

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_CURRENT_ENGINE_HPP
