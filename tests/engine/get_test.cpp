// basic_engine: get and get_many (the read path of one node).
#include <distcache/engine.hpp>
//
#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/engine_fixture.hpp"

TEST_CASE("get loads a miss once, then answers from the cache") {
  fixture f;
  f.src->set("user:1", "Ada");
  auto a = f.e->get<users>("user:1");
  REQUIRE(a.has_value());
  CHECK(**a == "Ada");
  auto b = f.e->get<users>("user:1");
  REQUIRE(b.has_value());
  CHECK(*b == *a);  // the same shared object: a hit neither copies nor re-parses
  CHECK(f.src->calls == 1);
  auto s = f.e->stats<users>();
  CHECK(s.gets == 2);
  CHECK(s.cache_hits == 1);
  CHECK(s.loads == 1);
  CHECK(s.loads_deduped == 1);
  CHECK(s.local_loads == 1);
  CHECK(s.local_load_errs == 0);
  CHECK(s.main_cache_items == 1);
  CHECK(s.main_cache_bytes > 0);
}

TEST_CASE("100 threads missing one key cause exactly one data-source call") {
  fixture f;
  f.src->set("hot", "value");
  f.src->close_gate();
  std::vector<std::thread> callers;
  callers.reserve(100);
  std::atomic<int> ok{0};
  for (int i = 0; i < 100; ++i) {
    callers.emplace_back([&] {
      auto r = f.e->get<users>("hot");
      if (r && **r == "value") ok.fetch_add(1);
    });
  }
  // Hold the load until every caller has missed and joined the flight
  // (`loads` counts a miss once its caller waits in a flight).
  CHECK(eventually([&] { return f.e->stats<users>().loads == 100; }));
  f.src->open_gate();
  for (auto& t : callers) t.join();
  CHECK(ok == 100);
  CHECK(f.src->calls == 1);
  CHECK(f.e->stats<users>().loads_deduped == 1);
}

TEST_CASE("misses that race the end of the key's flight call the source no second time") {
  // A caller misses the cache, the key's flight ends (publishing the value)
  // before the caller joins it, and the caller starts a new flight: it must
  // answer from the cache, not load again. The window is short: many rounds
  // of 4 threads missing one fresh key at once, with an instant source.
  fixture f;
  constexpr int rounds = 3000;
  constexpr int threads = 4;
  std::atomic<int> round{-1};
  std::atomic<int> arrived{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  callers.reserve(threads);
  for (int t = 0; t < threads; ++t) {
    callers.emplace_back([&] {
      for (int r = 0; r < rounds; ++r) {
        while (round.load() < r) std::this_thread::yield();  // start together
        const std::string key = "k" + std::to_string(r);
        auto v = f.e->get<lengths>(key);
        if (!v || **v != static_cast<int>(key.size())) wrong.fetch_add(1);
        arrived.fetch_add(1);
      }
    });
  }
  for (int r = 0; r < rounds; ++r) {
    round.store(r);
    while (arrived.load() < (r + 1) * threads) std::this_thread::yield();
  }
  for (auto& t : callers) t.join();
  CHECK(wrong == 0);
  CHECK(*f.length_calls == rounds);  // one source call per key
  CHECK(f.e->stats<lengths>().loads_deduped == rounds);
}

TEST_CASE("a data-source error reaches every waiter and nothing is cached") {
  fixture f;
  f.src->fail = true;
  f.src->close_gate();
  auto a = f.e->async_get<users>("k", net::use_future);
  auto b = f.e->async_get<users>("k", net::use_future);
  CHECK(eventually([&] { return f.e->stats<users>().loads == 2; }));
  f.src->open_gate();
  for (auto* fut : {&a, &b}) {
    try {
      (void)fut->get();
      FAIL("expected an error");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == errc::data_source_failed);
    }
  }
  CHECK(f.src->calls == 1);
  CHECK(f.e->stats<users>().local_load_errs == 1);
  f.src->fail = false;
  f.src->set("k", "fixed");
  CHECK(**f.e->get<users>("k") == "fixed");  // the failure was not cached
}

TEST_CASE("an exception thrown by the data source becomes data_source_failed for every waiter") {
  std::vector<std::string> logged;
  std::mutex log_mutex;
  config c = small_config();
  c.log = [&](distcache::log_level, std::string_view line) {
    std::lock_guard lock(log_mutex);
    logged.emplace_back(line);
  };
  fixture f(c);
  f.src->do_throw = true;
  f.src->close_gate();
  auto a = f.e->async_get<users>("boom", net::use_future);
  auto b = f.e->async_get<users>("boom", net::use_future);
  CHECK(eventually([&] { return f.e->stats<users>().loads == 2; }));
  f.src->open_gate();
  for (auto* fut : {&a, &b}) CHECK_THROWS_AS((void)fut->get(), boost::system::system_error);
  CHECK(f.src->calls == 1);
  {
    std::lock_guard lock(log_mutex);
    REQUIRE(logged.size() == 1);
    CHECK(logged[0].find("database exploded") != std::string::npos);
  }
  // The engine keeps serving other keys and keyspaces.
  f.src->do_throw = false;
  f.src->set("fine", "yes");
  CHECK(**f.e->get<users>("fine") == "yes");
  CHECK(**f.e->get<lengths>("abc") == 3);
}

TEST_CASE("not_found is reported, not cached, and asked again next time") {
  fixture f;
  auto r = f.e->get<users>("missing");
  CHECK(r.error() == errc::not_found);
  CHECK(f.e->get<users>("missing").error() == errc::not_found);
  CHECK(f.src->calls == 2);
  CHECK(f.e->stats<users>().local_load_errs == 0);  // not_found is not a failure
  CHECK(f.e->stats<users>().main_cache_items == 0);
}

TEST_CASE("a waiter that times out ends alone; the load runs on and fills the cache") {
  config c = small_config();
  c.keyspaces["users"].read_timeout = 30ms;
  fixture f(c);
  f.src->set("slow", "eventually");
  f.src->close_gate();
  auto r = f.e->get<users>("slow");
  CHECK(r.error() == errc::timeout);
  CHECK(f.src->in_flight == 1);  // still loading
  f.src->open_gate();
  CHECK(eventually([&] { return f.e->stats<users>().main_cache_items == 1; }));
  auto again = f.e->get<users>("slow");
  REQUIRE(again.has_value());
  CHECK(**again == "eventually");
  CHECK(f.src->calls == 1);
}

TEST_CASE("cancelling one waiter does not cancel the shared load for the others") {
  fixture f;
  f.src->set("k", "v");
  f.src->close_gate();
  // The signal is emitted, and the handler runs, on one strand, as Asio's
  // per-operation cancellation requires.
  auto strand = net::make_strand(f.e->get_executor());
  net::cancellation_signal signal;
  std::promise<error_code> cancelled;
  net::post(strand, [&] {
    f.e->async_get<users>(
        "k", net::bind_cancellation_slot(
                 signal.slot(), net::bind_executor(strand, [&](error_code ec, const auto&) {
                   cancelled.set_value(ec);
                 })));
  });
  auto other = f.e->async_get<users>("k", net::use_future);
  CHECK(eventually([&] { return f.e->stats<users>().loads == 2; }));
  net::post(strand, [&] { signal.emit(net::cancellation_type::terminal); });
  auto fut = cancelled.get_future();
  CHECK(fut.get() == net::error::operation_aborted);
  f.src->open_gate();
  CHECK(*other.get() == "v");
  CHECK(f.src->calls == 1);
}

TEST_CASE("get_many answers in key order with per-key errors") {
  fixture f;
  f.src->set("a", "A");
  f.src->set("c", "C");
  REQUIRE(f.e->put<users>("b", "B"));
  std::vector<std::string> keys{"a", "b", "missing", "", "c", "a"};
  auto r = f.e->get_many<users>(keys);
  REQUIRE(r.has_value());
  REQUIRE(r->size() == keys.size());
  CHECK(*(*r)[0].value() == "A");
  CHECK(*(*r)[1].value() == "B");
  CHECK((*r)[2].error() == errc::not_found);
  CHECK((*r)[3].error() == errc::invalid_key);
  CHECK(*(*r)[4].value() == "C");
  CHECK(*(*r)[5].value() == "A");
  CHECK(f.e->get_many<users>(std::vector<std::string>{})->empty());
}

TEST_CASE("get_many of cached keys answers inline and counts one hit per key") {
  fixture f;
  std::vector<std::pair<std::string, std::string>> entries{{"h1", "1"}, {"h2", "2"}, {"h3", "3"}};
  REQUIRE(f.e->put_many<users>(entries));
  const std::vector<std::string> keys{"h3", "h1", "h2", "h1"};
  auto r = f.e->get_many<users>(keys);
  REQUIRE(r.has_value());
  REQUIRE(r->size() == 4);
  CHECK(**(*r)[0] == "3");
  CHECK(**(*r)[1] == "1");
  CHECK(**(*r)[2] == "2");
  CHECK((*r)[1].value() == (*r)[3].value());  // the same cached object
  CHECK(f.e->stats<users>().cache_hits == 4);
  CHECK(f.e->stats<users>().gets == 4);
  CHECK(f.src->calls == 0);
  // One miss among hits takes the general path; nothing is counted twice.
  f.src->set("m", "miss");
  const std::vector<std::string> mixed{"h1", "m"};
  auto m = f.e->get_many<users>(mixed);
  REQUIRE(m.has_value());
  CHECK(**(*m)[1] == "miss");
  CHECK(f.e->stats<users>().cache_hits == 5);
  CHECK(f.e->stats<users>().loads == 1);
}

TEST_CASE("fetch_on_caller_thread: a blocking get's miss calls the source on the caller's thread") {
  config c = small_config();
  c.keyspaces["users"].fetch_on_caller_thread = true;
  fixture f(c);
  f.src->set("k", "v");
  f.src->set("k2", "v2");
  auto r = f.e->get<users>("k");
  REQUIRE(r.has_value());
  CHECK(**r == "v");
  CHECK(f.src->thread_of("k") == std::this_thread::get_id());
  // An asynchronous get still hands the call to the pool.
  std::promise<std::string> p;
  f.e->async_get<users>("k2", [&](error_code ec, const distcache::value_ptr<std::string>& v) {
    p.set_value(ec ? ec.message() : *v);
  });
  CHECK(p.get_future().get() == "v2");
  CHECK(f.src->thread_of("k2") != std::this_thread::get_id());
  CHECK(f.src->thread_of("k2") != std::thread::id{});
}

TEST_CASE("fetch_on_caller_thread is off by default: the source runs on the pool") {
  fixture f;
  f.src->set("k", "v");
  REQUIRE(f.e->get<users>("k").has_value());
  CHECK(f.src->thread_of("k") != std::this_thread::get_id());
  CHECK(f.src->thread_of("k") != std::thread::id{});
}

TEST_CASE("fetch_on_caller_thread: a call that waited for a concurrency slot goes to the pool") {
  config c = small_config();
  c.keyspaces["users"].fetch_on_caller_thread = true;
  c.keyspaces["users"].max_concurrent_fetches = 1;
  fixture f(c);
  f.src->set("first", "1");
  f.src->set("second", "2");
  f.src->close_gate();
  std::promise<std::thread::id> first_id;
  std::promise<std::thread::id> second_id;
  std::thread first([&] {
    first_id.set_value(std::this_thread::get_id());
    CHECK(f.e->get<users>("first").has_value());
  });
  REQUIRE(eventually([&] { return f.src->in_flight == 1; }));  // fetching on `first`, gated
  std::thread second([&] {
    second_id.set_value(std::this_thread::get_id());
    CHECK(f.e->get<users>("second").has_value());
  });
  REQUIRE(eventually([&] { return f.e->stats<users>().fetches_queued == 1; }));
  f.src->open_gate();
  first.join();
  second.join();
  const auto first_thread = first_id.get_future().get();
  const auto second_thread = second_id.get_future().get();
  CHECK(f.src->thread_of("first") == first_thread);
  // Started when `first` released its slot, on `first`'s thread: handed to the pool.
  CHECK(f.src->thread_of("second") != first_thread);
  CHECK(f.src->thread_of("second") != second_thread);
  CHECK(f.src->calls == 2);
}

TEST_CASE("fetch_on_caller_thread: the caller waits for its own fetch past read_timeout") {
  config c = small_config();
  c.keyspaces["users"].fetch_on_caller_thread = true;
  c.keyspaces["users"].read_timeout = 50ms;
  fixture f(c);
  f.src->set("slow", "late");
  f.src->close_gate();
  auto got = std::async(std::launch::async, [&] { return f.e->get<users>("slow"); });
  REQUIRE(eventually([&] { return f.src->in_flight == 1; }));
  // Three read timeouts later the caller is still in its data source: the
  // documented trade-off (with the pool it would have had errc::timeout).
  CHECK(got.wait_for(150ms) == std::future_status::timeout);
  f.src->open_gate();
  auto r = got.get();
  REQUIRE(r.has_value());
  CHECK(**r == "late");
}

TEST_CASE("fetch_on_caller_thread: stop() waits for a call running on a caller's thread") {
  config c = small_config();
  c.keyspaces["users"].fetch_on_caller_thread = true;
  c.keyspaces["users"].max_concurrent_fetches = 1;
  c.keyspaces["users"].read_timeout = 30s;
  fixture f(c);
  f.src->set("first", "1");
  f.src->set("second", "2");
  f.src->close_gate();
  auto first = std::async(std::launch::async, [&] { return f.e->get<users>("first"); });
  REQUIRE(eventually([&] { return f.src->in_flight == 1; }));  // on `first`'s thread, gated
  auto second = std::async(std::launch::async, [&] { return f.e->get<users>("second"); });
  REQUIRE(eventually([&] { return f.e->stats<users>().fetches_queued == 1; }));
  auto stopped = std::async(std::launch::async, [&] { return f.e->stop(); });
  // stop() ends the callers' waits at once, but returns only once the call
  // on `first`'s thread has (it then starts the queued one, which posts to
  // the pool: the pool must still be there).
  CHECK(second.get().error() == errc::stopped);
  CHECK(stopped.wait_for(100ms) == std::future_status::timeout);
  f.src->open_gate();
  CHECK(stopped.get().has_value());
  CHECK(first.get().error() == errc::stopped);
  CHECK(f.src->calls == 1);  // the queued call saw the engine stopping and did not run
}

// ------------------------------------------------------------------ read

TEST_CASE("read calls its function on the cached value in place, without a handle") {
  fixture f;
  f.src->set("user:1", "Ada");
  auto held = f.e->get<users>("user:1");  // a miss: loaded and cached
  REQUIRE(held.has_value());
  const long count = held->use_count();
  const std::string* seen = nullptr;
  long count_inside = 0;
  auto r = f.e->read<users>("user:1", [&](const std::string& v) {
    seen = &v;
    count_inside = held->use_count();
    return v.size();
  });
  REQUIRE(r.has_value());
  CHECK(*r == 3);
  CHECK(seen == held->get());    // the cached object itself, not a copy
  CHECK(count_inside == count);  // and no handle to it while fn ran
  CHECK(f.src->calls == 1);
  auto s = f.e->stats<users>();
  CHECK(s.gets == 2);
  CHECK(s.cache_hits == 1);
}

TEST_CASE("read loads a miss once and calls its function with the loaded value") {
  fixture f;
  f.src->set("user:2", "Grace");
  std::string copy;
  auto r = f.e->read<users>("user:2", [&](const std::string& v) { copy = v; });
  static_assert(std::is_same_v<decltype(r), distcache::result<void>>);
  REQUIRE(r.has_value());
  CHECK(copy == "Grace");
  CHECK(f.src->calls == 1);
  auto again = f.e->read<users>("user:2", [](const std::string& v) { return v + "!"; });
  REQUIRE(again.has_value());
  CHECK(*again == "Grace!");
  CHECK(f.src->calls == 1);
  auto s = f.e->stats<users>();
  CHECK(s.loads == 1);
  CHECK(s.cache_hits == 1);
}

TEST_CASE("read returns get's errors without calling its function") {
  fixture f;
  int calls = 0;
  auto fn = [&calls](const std::string&) { return ++calls; };
  CHECK(f.e->read<users>("ghost", fn).error() == errc::not_found);
  CHECK(f.e->read<users>("", fn).error() == errc::invalid_key);
  REQUIRE(f.e->stop());
  CHECK(f.e->read<users>("user:1", fn).error() == errc::stopped);
  CHECK(calls == 0);
}

namespace {

/// The result of `f`, which must be ready within `limit`: a call that
/// deadlocked would hang the whole run, so the test process aborts instead
/// (doctest reports the crash and the test's name).
template <class T>
T within(std::future<T>& f, std::chrono::seconds limit = 60s) {
  if (f.wait_for(limit) != std::future_status::ready) {
    std::fputs("a call did not finish within its limit (a deadlock?)\n", stderr);
    std::abort();
  }
  return f.get();
}

}  // namespace

TEST_CASE("an engine call inside read's function is refused with call_inside_read") {
  fixture f;
  f.src->set("miss", "loaded");
  REQUIRE(f.e->put<users>("hit", std::string("cached")));
  const std::vector<std::string> keys{"hit"};
  const std::vector<std::pair<std::string, std::string>> entries{{"hit", "x"}};
  // An in-place hit (under the shard's read lock), then a miss (after get).
  for (const char* key : {"hit", "miss"}) {
    CAPTURE(key);
    std::vector<error_code> seen;
    auto r = f.e->read<users>(key, [&](const std::string&) {
      seen.push_back(f.e->get<users>("hit").error());
      seen.push_back(f.e->put<users>("hit", std::string("x")).error());
      seen.push_back(f.e->remove<users>("hit").error());
      seen.push_back(f.e->read<users>("hit", [](const std::string&) {}).error());
      seen.push_back(f.e->get_many<users>(keys).error());
      seen.push_back(f.e->put_many<users>(entries).error());
      seen.push_back(f.e->remove_many<users>(keys).error());
      seen.push_back(f.e->start().error());
      seen.push_back(f.e->stop().error());
      auto async = f.e->async_get<users>("hit", net::use_future);
      try {
        async.get();
        seen.emplace_back();
      } catch (const boost::system::system_error& e) {
        seen.push_back(e.code());
      }
    });
    REQUIRE(r.has_value());
    REQUIRE(seen.size() == 10);
    for (std::size_t i = 0; i < seen.size(); ++i) {
      CAPTURE(i);
      CHECK(seen[i] == errc::call_inside_read);
    }
  }
  // Once read() returned, the thread may call the engine again.
  REQUIRE(f.e->put<users>("hit", std::string("y")));
  CHECK(**f.e->get<users>("hit") == "y");
}

TEST_CASE("a write waits for read's function, whose statistics do not wait for the write") {
  config c = small_config();
  c.keyspaces["users"].shards = 1;  // every key in the shard being read
  fixture f(c);
  REQUIRE(f.e->put<users>("k", std::string("v")));
  std::atomic<bool> fn_returned{false};
  auto reader = std::async(std::launch::async, [&] {
    std::future<bool> writer;
    std::size_t hot = 1;
    auto r = f.e->read<users>("k", [&](const std::string&) {
      // A put of another key of the shard: it waits for this read.
      writer = std::async(std::launch::async, [&] {
        const bool stored = f.e->put<users>("k2", std::string("w")).has_value();
        return stored && fn_returned.load();  // the read ended first
      });
      // Statistics meanwhile, while the writer holds the shard and waits:
      // they must not wait for it in turn.
      std::uint64_t items = 0;
      const auto until = std::chrono::steady_clock::now() + 50ms;
      while (std::chrono::steady_clock::now() < until)
        items += f.e->stats<users>().main_cache_items;
      hot = f.e->hot_keys<users>(10).size();  // refused inside: an empty list
      fn_returned = true;
      return items;
    });
    return std::tuple{r.has_value() && *r > 0, within(writer), hot};
  });
  auto [read_ok, put_after_read, hot] = within(reader);
  CHECK(read_ok);
  CHECK(put_after_read);
  CHECK(hot == 0);
  CHECK(**f.e->get<users>("k2") == "w");
}

TEST_CASE("read on an engine thread is refused like any blocking call") {
  fixture f;
  REQUIRE(f.e->put<users>("k", std::string("v")));
  std::promise<error_code> inside;
  f.e->async_get<users>("k", [&](error_code, const distcache::value_ptr<std::string>&) {
    inside.set_value(f.e->read<users>("k", [](const std::string&) {}).error());
  });
  auto ec = inside.get_future();
  CHECK(within(ec) == errc::blocking_call_on_engine_thread);
}

TEST_CASE("an exception thrown by read's function propagates and leaves the key writable") {
  fixture f;
  f.src->set("loaded", "from the source");
  REQUIRE(f.e->put<users>("k", std::string("v")));
  auto throwing = [](const std::string&) -> int { throw std::runtime_error("boom"); };
  CHECK_THROWS_AS((void)f.e->read<users>("k", throwing), std::runtime_error);       // in place
  CHECK_THROWS_AS((void)f.e->read<users>("loaded", throwing), std::runtime_error);  // a miss
  // The read lock was released: a put of the key (which waits for readers
  // of its shard) completes.
  auto put = std::async(std::launch::async,
                        [&] { return f.e->put<users>("k", std::string("w")).has_value(); });
  CHECK(within(put));
  CHECK(**f.e->get<users>("k") == "w");  // and this thread may call the engine again
  CHECK(**f.e->get<users>("loaded") == "from the source");  // the miss's load stays cached
  CHECK(f.src->calls == 1);
}

TEST_CASE("a value read in place stays whole while a writer replaces and removes it") {
  fixture f;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      (void)f.e->put<users>("k", std::string(64, static_cast<char>('a' + i % 26)));
      if (i % 7 == 0) (void)f.e->remove<users>("k");
    }
  });
  int served = 0;
  int torn = 0;
  for (int i = 0; i < 20000; ++i) {
    auto r = f.e->read<users>("k", [](const std::string& v) {
      return v.size() == 64 && v.find_first_not_of(v[0]) == std::string::npos;
    });
    if (r) {
      ++served;
      if (!*r) ++torn;
    }
  }
  stop = true;
  writer.join();
  CHECK(torn == 0);
  CHECK(served > 0);
}
