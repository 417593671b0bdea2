// distcache — completion-handler helpers of the typed engine front: typing
// the core's erased values back, and blocking on an asynchronous operation.
#ifndef DISTCACHE_DETAIL_HANDLERS_HPP
#define DISTCACHE_DETAIL_HANDLERS_HPP

#include <boost/asio/associator.hpp>
#include <condition_variable>
#include <distcache/error.hpp>
#include <distcache/value.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

namespace distcache::detail {

/// The core's value handle as a value_ptr<V>.
template <class V>
struct as_value {
  value_ptr<V> operator()(std::shared_ptr<const void> v) const noexcept {
    return std::static_pointer_cast<const V>(std::move(v));
  }
};

/// The core's get_many results as results of value_ptr<V>.
template <class V>
struct as_values {
  std::vector<result<value_ptr<V>>> operator()(
      std::vector<result<std::shared_ptr<const void>>> in) const {
    std::vector<result<value_ptr<V>>> out;
    out.reserve(in.size());
    for (auto& r : in) {
      if (r) {
        out.emplace_back(std::static_pointer_cast<const V>(std::move(*r)));
      } else {
        out.emplace_back(r.error());
      }
    }
    return out;
  }
};

/// A handler of `void(error_code, T)` that converts the core's argument
/// with Convert before calling the user's handler. Its associated executor,
/// allocator and cancellation slot are the user handler's.
template <class Convert, class Handler>
struct converting_handler {
  Handler handler;
  template <class Arg>
  void operator()(error_code ec, Arg&& arg) {
    std::move(handler)(ec, Convert{}(std::forward<Arg>(arg)));
  }
};

/// The state a blocking caller waits on.
template <class... Args>
struct blocking_state {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<std::tuple<Args...>> outcome;
};

/// The completion handler of block_on(): stores the outcome and wakes the
/// waiting thread. One type per signature, whatever the operation, so the
/// erased handler it becomes is compiled once.
template <class... Args>
struct blocking_handler {
  std::shared_ptr<blocking_state<Args...>> state;
  void operator()(Args... args) const {
    std::lock_guard lock(state->mutex);
    state->outcome.emplace(std::move(args)...);
    state->cv.notify_one();
  }
};

/// Runs an asynchronous operation and blocks the calling thread until it
/// completes: `initiate(handler)` starts it; returns the completion's
/// arguments. The one way the engine's blocking forms wait.
template <class... Args, class Initiate>
std::tuple<Args...> block_on(Initiate&& initiate) {
  auto s = std::make_shared<blocking_state<Args...>>();
  std::forward<Initiate>(initiate)(blocking_handler<Args...>{s});
  std::unique_lock lock(s->mutex);
  s->cv.wait(lock, [&] { return s->outcome.has_value(); });
  return std::move(*s->outcome);
}

}  // namespace distcache::detail

template <template <class, class> class Associator, class Convert, class Handler,
          class DefaultCandidate>
struct boost::asio::associator<Associator, distcache::detail::converting_handler<Convert, Handler>,
                               DefaultCandidate> : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type get(
      const distcache::detail::converting_handler<Convert, Handler>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler);
  }
  static auto get(const distcache::detail::converting_handler<Convert, Handler>& h,
                  const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};

#endif  // DISTCACHE_DETAIL_HANDLERS_HPP
