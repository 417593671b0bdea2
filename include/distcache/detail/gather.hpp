// distcache — gather: the one fan-in of the library.
#ifndef DISTCACHE_DETAIL_GATHER_HPP
#define DISTCACHE_DETAIL_GATHER_HPP

#include <atomic>
#include <cstddef>
#include <distcache/error.hpp>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace distcache::detail {

/// Joins `n` parallel parts: part i calls set(i, outcome); `done` runs once,
/// with every outcome in part order, on the thread of the last set(). The
/// one fan-in of the engine (get_many, batched peer answers, writes that
/// reach several nodes).
template <class T>
class gather {
 public:
  gather(std::size_t n, std::function<void(std::vector<T>)> done)
      : results_(n), remaining_(n), done_(std::move(done)) {}

  /// Records part i's outcome; the last one runs `done`.
  void set(std::size_t i, T outcome) {
    results_[i] = std::move(outcome);
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_(std::move(results_));
  }

  /// Starts a gather of `n` parts; with none, `done` runs at once.
  static std::shared_ptr<gather> make(std::size_t n, std::function<void(std::vector<T>)> done) {
    if (n == 0) {
      done({});
      return nullptr;
    }
    return std::make_shared<gather>(n, std::move(done));
  }

 private:
  std::vector<T> results_;
  std::atomic<std::size_t> remaining_;
  std::function<void(std::vector<T>)> done_;
};

/// The first error of `outcomes`, or none.
inline error_code first_error(const std::vector<error_code>& outcomes) {
  for (const auto& ec : outcomes) {
    if (ec) return ec;
  }
  return {};
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_GATHER_HPP
