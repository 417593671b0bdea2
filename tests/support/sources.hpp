// Data sources for tests: counting, failing, throwing and blocking on command.
#ifndef DISTCACHE_TESTS_SUPPORT_SOURCES_HPP
#define DISTCACHE_TESTS_SUPPORT_SOURCES_HPP

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <distcache/keyspace.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace distcache::test {

/// Shared state of a scripted source: what it holds and how it behaves now.
struct source_state {
  std::mutex mutex;
  std::condition_variable cv;
  std::map<std::string, std::string, std::less<>> data;
  std::atomic<int> calls{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  bool fail = false;                     // return data_source_failed
  bool do_throw = false;                 // throw std::runtime_error
  bool gate_closed = false;              // fetch blocks until open_gate()
  std::chrono::milliseconds latency{0};  // every fetch takes this long (a slow database)
  bool read_before_gate = false;  // the gate holds a fetch after it read the data (a slow reply)
  std::map<std::string, std::thread::id, std::less<>>
      fetched_on;  // key → the thread that fetched it

  /// The thread that last fetched `key` (a default id when none did).
  std::thread::id thread_of(std::string_view key) {
    std::lock_guard lock(mutex);
    auto it = fetched_on.find(key);
    return it == fetched_on.end() ? std::thread::id{} : it->second;
  }

  void set(std::string key, std::string value) {
    std::lock_guard lock(mutex);
    data[std::move(key)] = std::move(value);
  }
  void close_gate() {
    std::lock_guard lock(mutex);
    gate_closed = true;
  }
  void open_gate() {
    {
      std::lock_guard lock(mutex);
      gate_closed = false;
    }
    cv.notify_all();
  }
};

/// A data source of std::string values whose behaviour a test scripts.
struct scripted_source {
  std::shared_ptr<source_state> state = std::make_shared<source_state>();

  fetch_result<std::string> fetch(std::string_view key) {
    state->calls.fetch_add(1);
    const int now_in = state->in_flight.fetch_add(1) + 1;
    for (int seen = state->max_in_flight.load();
         now_in > seen && !state->max_in_flight.compare_exchange_weak(seen, now_in);) {
    }
    std::unique_lock lock(state->mutex);
    state->fetched_on[std::string(key)] = std::this_thread::get_id();
    std::optional<std::string> read_early;
    if (state->read_before_gate) {
      if (auto it = state->data.find(key); it != state->data.end()) read_early = it->second;
    }
    // The database's own time to answer, not a wait for anything.
    if (state->latency > std::chrono::milliseconds::zero()) {
      state->cv.wait_for(lock, state->latency, [] { return false; });
    }
    // Bounded: a test that forgets to open the gate fails instead of hanging.
    state->cv.wait_for(lock, std::chrono::seconds(20), [&] { return !state->gate_closed; });
    state->in_flight.fetch_sub(1);
    if (state->do_throw) throw std::runtime_error("database exploded");
    if (state->fail) return make_error_code(errc::data_source_failed);
    if (state->read_before_gate) {
      if (read_early) return *read_early;
      return not_found;
    }
    auto it = state->data.find(key);
    if (it == state->data.end()) return not_found;
    return it->second;
  }
};

/// Waits until `pred()` holds or `timeout` passes; returns pred().
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::yield();
  }
  return true;
}

}  // namespace distcache::test

#endif  // DISTCACHE_TESTS_SUPPORT_SOURCES_HPP
