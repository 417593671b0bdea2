// distcache — which engine's thread this is.
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

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_CURRENT_ENGINE_HPP
