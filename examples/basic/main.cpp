// distcache example: the basic operations of one keyspace over an in-memory data source.
//
// The data source is a std::map behind a mutex that counts its fetch calls, so every step can
// show (and check) whether the cache answered or the source was asked. The program exits 0 when
// every count is what it should be, and prints a FAIL line and exits 1 otherwise.
//
//   g++ -std=c++20 -Iinclude examples/basic/main.cpp -lboost_json -pthread -o example_basic

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>
#include <distcache/distcache.hpp>
#include <exception>
#include <functional>
#include <future>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace net = boost::asio;

namespace {

// ------------------------------------------------------------------ the data source

/// An in-memory "database" of greetings by language code. The keyspace (and so the source) is
/// moved into the engine, so the map and the call counter live in a shared state that the
/// program keeps a handle to.
class memory_source {
 public:
  explicit memory_source(std::map<std::string, std::string, std::less<>> rows)
      : state_(std::make_shared<state>()) {
    state_->rows = std::move(rows);
  }

  /// Called by the engine on a miss, on its blocking pool, possibly concurrently for different
  /// keys: hence the mutex.
  distcache::fetch_result<std::string> fetch(std::string_view key) {
    state_->fetches.fetch_add(1);
    std::lock_guard lock(state_->mutex);
    auto it = state_->rows.find(key);
    if (it == state_->rows.end()) return distcache::not_found;
    return it->second;
  }

  /// How many times fetch() ran.
  [[nodiscard]] int fetches() const { return state_->fetches.load(); }

 private:
  struct state {
    std::mutex mutex;
    std::map<std::string, std::string, std::less<>> rows;
    std::atomic<int> fetches{0};
  };
  std::shared_ptr<state> state_;
};

// ------------------------------------------------------------------ the keyspace

/// One kind of cached value: greetings, as std::string (string_serializer is deduced).
struct greetings {
  static constexpr std::string_view name = "greetings";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;  // 1 MiB for the main cache
  memory_source source;
};

using cache = distcache::engine<greetings>;
using greeting = distcache::result<distcache::value_ptr<std::string>>;

// ------------------------------------------------------------------ printing and checking

int failures = 0;

/// Prints a FAIL line and remembers the failure when `ok` is false.
void expect(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::cout << "FAIL: " << what << '\n';
}

/// Checks the source's fetch count after each step. After a wrong count, later steps are judged
/// against what was seen, so that one wrong step gives one FAIL line.
class fetch_check {
 public:
  explicit fetch_check(const memory_source& src) : src_(src) {}
  void operator()(int want, std::string_view step) {
    const int seen = src_.fetches();
    expect(seen == want + drift_, std::string(step) + ": expected " +
                                      std::to_string(want + drift_) + " source fetches, saw " +
                                      std::to_string(seen));
    drift_ = seen - want;
  }

 private:
  const memory_source& src_;
  int drift_ = 0;
};

/// One aligned line: `[tag]  what   source fetches: n`.
void show(std::string_view tag, const std::string& what, const memory_source& src) {
  std::cout << std::left << std::setw(14) << ("[" + std::string(tag) + "]") << std::setw(50) << what
            << "source fetches: " << src.fetches() << '\n';
}

/// "hello", not_found, or the error's message.
std::string text_of(const greeting& r) {
  if (r) return '"' + **r + '"';
  if (r.error() == distcache::errc::not_found) return "not_found";
  return "error: " + r.error().message();
}

/// The asynchronous reads of step 6, in a coroutine on the program's own io_context.
net::awaitable<void> read_with_coroutine(cache& c, std::string& out) {
  // use_awaitable throws boost::system::system_error on an error ...
  distcache::value_ptr<std::string> es = co_await c.async_get<greetings>("es", net::use_awaitable);
  out = '"' + *es + '"';
  // ... and as_tuple(use_awaitable) hands the error code back instead.
  auto [ec, missing] = co_await c.async_get<greetings>("la", net::as_tuple(net::use_awaitable));
  out += ec == distcache::errc::not_found ? ", la -> not_found" : ", la -> ?";
  (void)missing;
}

/// The walk-through; returns the exit code.
int run() {
  memory_source source({{"en", "hello"}, {"fr", "bonjour"}, {"de", "hallo"}, {"es", "hola"}});

  distcache::config cfg;
  cfg.threads = 2;        // io_context threads
  cfg.fetch_threads = 2;  // the blocking pool that runs fetch()
  cache c{cfg, greetings{.source = source}};
  fetch_check fetches(source);
  if (auto r = c.start(); !r) {
    std::cout << "FAIL: start: " << r.error().message() << '\n';
    return 1;
  }

  // 1. A miss: the value is loaded from the source and cached.
  greeting first = c.get<greetings>("en");
  show("get", "en -> " + text_of(first) + " (miss: loaded)", source);
  expect(first && **first == "hello", "get en should be \"hello\"");
  fetches(1, "get en (miss)");

  // 2. A hit: no source call; the handle points at the very object the first get returned.
  greeting again = c.get<greetings>("en");
  const bool same = first && again && first->get() == again->get();
  show("get", "en -> " + text_of(again) + (same ? " (hit: same object)" : " (hit)"), source);
  expect(again && **again == "hello", "second get en should be \"hello\"");
  expect(same, "a hit should hand out the cached object itself");
  fetches(1, "get en (hit)");

  // 2b. read calls a function on the cached object in place: no handle is made.
  auto length = c.read<greetings>("en", [](const std::string& v) { return v.size(); });
  show("read",
       "en -> " + (length ? std::to_string(*length) : length.error().message()) +
           " characters (hit: read in place)",
       source);
  expect(length && *length == 5, "read en should see 5 characters");
  fetches(1, "read en (hit)");

  // 3. put stores a value without asking the source; a get then hits.
  expect(c.put<greetings>("it", "ciao").has_value(), "put it should succeed");
  greeting it = c.get<greetings>("it");
  show("put+get", "it -> " + text_of(it), source);
  expect(it && **it == "ciao", "get it should be \"ciao\" after put");
  fetches(1, "put it + get it");

  // 4. remove drops the cached value: the next get asks the source again.
  expect(c.remove<greetings>("en").has_value(), "remove en should succeed");
  greeting reloaded = c.get<greetings>("en");
  show("remove+get", "en -> " + text_of(reloaded) + " (loaded again)", source);
  expect(reloaded && **reloaded == "hello", "get en after remove should be \"hello\"");
  fetches(2, "remove en + get en");

  // 5. get_many: one result per key, in order; "en" is cached, "fr" and "de" are loaded.
  const std::vector<std::string> keys = {"en", "fr", "de"};
  auto many = c.get_many<greetings>(keys);
  std::string listed;
  if (many) {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      listed += (i ? ", " : "") + keys[i] + " -> " + text_of((*many)[i]);
    }
  } else {
    listed = "error: " + many.error().message();
  }
  show("get_many", listed, source);
  expect(many && many->size() == 3 && (*many)[0] && **(*many)[0] == "hello" && (*many)[1] &&
             **(*many)[1] == "bonjour" && (*many)[2] && **(*many)[2] == "hallo",
         "get_many en, fr, de should be hello, bonjour, hallo");
  fetches(4, "get_many en, fr, de");

  // 6a. async_get with a callback: it runs later, on an engine thread (the handler has no
  // executor of its own). A callback must not call the blocking API; it hands the value over.
  std::promise<std::string> promised;
  c.async_get<greetings>(
      "es", [&promised](distcache::error_code ec, const distcache::value_ptr<std::string>& v) {
        promised.set_value(ec ? "error: " + ec.message() : '"' + *v + '"');
      });
  const std::string es = promised.get_future().get();
  show("async_get", "es -> " + es + " (callback, miss: loaded)", source);
  expect(es == "\"hola\"", "async_get es should be \"hola\"");
  fetches(5, "async_get es (callback)");

  // 6b. async_get with use_awaitable, in a coroutine on a separate io_context: the completion
  // runs on the coroutine's executor. "es" is now cached; "la" is not in the source.
  net::io_context app;
  std::string from_coroutine;
  net::co_spawn(app, read_with_coroutine(c, from_coroutine), [&](const std::exception_ptr& e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      from_coroutine = std::string("exception: ") + ex.what();
    }
  });
  app.run();
  show("co_await", "es -> " + from_coroutine, source);
  expect(from_coroutine == "\"hola\", la -> not_found",
         "the coroutine should read \"hola\" and not_found, got " + from_coroutine);
  fetches(6, "co_await es (hit) + la (not found)");

  // 7. A key the source does not have: not_found, and nothing is cached, so reading it again
  // asks the source again.
  greeting missing = c.get<greetings>("xx");
  show("get", "xx -> " + text_of(missing), source);
  expect(!missing && missing.error() == distcache::errc::not_found, "get xx should be not_found");
  fetches(7, "get xx");
  missing = c.get<greetings>("xx");
  show("get", "xx -> " + text_of(missing) + " (not cached)", source);
  expect(!missing && missing.error() == distcache::errc::not_found,
         "get xx again should be not_found");
  fetches(8, "get xx again");

  // 8. Statistics (groupcache's meanings; see docs/concepts.md).
  const distcache::keyspace_stats s = c.stats<greetings>();
  std::cout << "\nstats of keyspace 'greetings':\n"
            << "  gets " << s.gets << ", cache_hits " << s.cache_hits << ", loads " << s.loads
            << ", loads_deduped " << s.loads_deduped << "\n"
            << "  local_loads " << s.local_loads << ", local_load_errs " << s.local_load_errs
            << ", remove_keys_requests " << s.remove_keys_requests << ", removed_keys "
            << s.removed_keys << "\n"
            << "  main cache: " << s.main_cache_items << " items, " << s.main_cache_bytes
            << " bytes charged; evictions " << s.evictions << "\n";
  // gets: en, en, en (read), it, en, (en fr de), es, es, la, xx, xx = 13;
  // hits: en, en (read), it, en (get_many), es.
  expect(s.gets == 13, "stats.gets should be 13, is " + std::to_string(s.gets));
  expect(s.cache_hits == 5, "stats.cache_hits should be 5, is " + std::to_string(s.cache_hits));
  expect(s.loads == 8, "stats.loads should be 8, is " + std::to_string(s.loads));
  expect(s.loads_deduped == 8,
         "stats.loads_deduped should be 8, is " + std::to_string(s.loads_deduped));
  // Values came back for en, en, fr, de, es; la and xx (twice) were not_found, which is no error.
  expect(s.local_loads == 5, "stats.local_loads should be 5, is " + std::to_string(s.local_loads));
  expect(s.local_load_errs == 0,
         "stats.local_load_errs should be 0, is " + std::to_string(s.local_load_errs));
  expect(s.remove_keys_requests == 1 && s.removed_keys == 1,
         "stats should count one remove request that removed one key");
  // Cached now: en, it, fr, de, es.
  expect(s.main_cache_items == 5,
         "stats.main_cache_items should be 5, is " + std::to_string(s.main_cache_items));

  if (auto r = c.stop(); !r) expect(false, "stop: " + r.error().message());

  if (failures != 0) {
    std::cout << "\n" << failures << " check(s) failed\n";
    return 1;
  }
  std::cout << "\nall checks passed\n";
  return 0;
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const std::exception& e) {
    std::cout << "FAIL: " << e.what() << '\n';
    return 1;
  }
}
