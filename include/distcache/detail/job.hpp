// distcache — job: a type-erased, move-only `void()` callable.
#ifndef DISTCACHE_DETAIL_JOB_HPP
#define DISTCACHE_DETAIL_JOB_HPP

#include <concepts>
#include <memory>
#include <utility>

namespace distcache::detail {

/// What a job must be: callable with no arguments, and movable.
template <class T>
concept job_callable = std::move_constructible<T> && std::invocable<T&>;

/// A type-erased, move-only `void()` callable: std::function would require
/// the completion handlers that jobs capture to be copyable. Used for the
/// bulkhead's queue and to hand completions to an executor through one
/// compiled function instead of one template instantiation per signature.
class job {
 public:
  job() = default;
  /// Holds `f`. The tag keeps this constructor apart from the move
  /// constructor.
  template <class Callable>
  job(std::in_place_t /*tag*/, Callable f)
      : impl_(std::make_unique<model<Callable>>(std::move(f))) {}

  void operator()() { impl_->call(); }
  explicit operator bool() const noexcept { return impl_ != nullptr; }

 private:
  struct callable {
    callable() = default;
    callable(const callable&) = delete;
    callable& operator=(const callable&) = delete;
    virtual ~callable() = default;
    virtual void call() = 0;
  };
  template <class Callable>
  struct model final : callable {
    explicit model(Callable fn) : f(std::move(fn)) {}
    void call() override { f(); }
    Callable f;
  };
  std::unique_ptr<callable> impl_;
};

/// A job holding `f`.
template <job_callable F>
job make_job(F f) {
  return job(std::in_place, std::move(f));
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_JOB_HPP
