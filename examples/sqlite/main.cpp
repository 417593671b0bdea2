// distcache example: a read-through cache in front of a real SQLite database.
//
// The program creates a small database, puts a cache in front of it and walks through what a
// read-through cache does, printing every step with the number of SQL queries the data source
// ran so far, and checking that number. It exits 0 when every check holds, and prints a FAIL
// line and exits 1 otherwise.
//
//   example_sqlite [DB_PATH]
//
// DB_PATH defaults to /tmp/distcache-example-<pid>.db, which is deleted at the end. A path given
// on the command line is kept for inspection (`sqlite3 DB_PATH 'select * from users'`); a table
// `users` already in it is replaced.
//
//   g++ -std=c++20 -Iinclude examples/sqlite/main.cpp -lboost_json -lsqlite3 -pthread

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <boost/describe/class.hpp>
#include <boost/system/error_category.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <distcache/distcache.hpp>
#include <exception>
#include <functional>
#include <iomanip>
#include <iostream>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

// ------------------------------------------------------------------ the value

/// A row of the users table. Described with Boost.Describe, so the keyspace needs no serializer
/// of its own: json_serializer<user> is deduced.
struct user {
  std::string name;
  int age = 0;
};
BOOST_DESCRIBE_STRUCT(user, (), (name, age))

// ------------------------------------------------------------------ SQLite errors

/// SQLite result codes as error codes, so that a failed query reaches the caller of get() with
/// SQLite's own message.
class sqlite_category final : public boost::system::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "sqlite"; }
  [[nodiscard]] std::string message(int ev) const override { return sqlite3_errstr(ev); }
};

distcache::error_code sqlite_error(int rc) {
  static const sqlite_category category;
  return {rc, category};
}

/// A connection that closes itself; shared by the copies of a data source.
using connection = std::shared_ptr<sqlite3>;

connection open_database(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  connection conn(db, sqlite3_close);  // closes a half-opened handle too
  if (rc != SQLITE_OK) {
    throw std::runtime_error("cannot open " + path + ": " + sqlite3_errstr(rc));
  }
  sqlite3_busy_timeout(db, 2000);
  return conn;
}

/// Runs SQL without results (DDL, INSERT, UPDATE) on the program's own connection.
void exec(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string what = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    throw std::runtime_error("SQL failed: " + what + " in: " + sql);
  }
}

// ------------------------------------------------------------------ the data source

/// Lets the program hold a query until a condition holds (bounded by a deadline), to show
/// that concurrent misses of one key share one query without guessing at timing.
struct query_gate {
  std::mutex mutex;
  std::function<bool()> release_when;  // empty: queries run at once
  bool timed_out = false;

  void hold_until(std::function<bool()> condition) {
    std::lock_guard lock(mutex);
    release_when = std::move(condition);
    timed_out = false;
  }
  void open() {
    std::lock_guard lock(mutex);
    release_when = nullptr;
  }
  /// Waits while the gate is held: polls the condition until it holds or 3 s pass.
  void pass() {
    std::unique_lock lock(mutex);
    if (!release_when) return;
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (!release_when()) {
      if (std::chrono::steady_clock::now() > deadline) {
        timed_out = true;
        return;
      }
      lock.unlock();
      std::this_thread::sleep_for(200us);
      lock.lock();
      if (!release_when) return;
    }
  }
};

/// Loads users by id from the users table. It opens its own read-only connection in serialized
/// mode (SQLITE_OPEN_FULLMUTEX), because the engine runs fetch() on a pool of threads,
/// concurrently for different keys. Each statement is prepared, run and finalized within one
/// fetch(), so concurrent fetches share no statement.
class user_source {
 public:
  user_source(const std::string& path, std::shared_ptr<query_gate> gate)
      : db_(open_database(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX)),
        gate_(std::move(gate)),
        queries_(std::make_shared<std::atomic<int>>(0)) {}

  /// A user, distcache::not_found for a missing row, or an SQLite error code.
  distcache::fetch_result<user> fetch(std::string_view id) {
    queries_->fetch_add(1);
    gate_->pass();
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_.get(), "SELECT name, age FROM users WHERE id = ?1", -1, &raw,
                                nullptr);
    const std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    if (rc != SQLITE_OK) return sqlite_error(rc);
    rc = sqlite3_bind_text(stmt.get(), 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) return sqlite_error(rc);
    rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_DONE) return distcache::not_found;
    if (rc != SQLITE_ROW) return sqlite_error(rc);
    const auto* name = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
    return user{name != nullptr ? name : "", sqlite3_column_int(stmt.get(), 1)};
  }

  /// SELECTs this source (and its copies) ran.
  [[nodiscard]] int queries() const { return queries_->load(); }

 private:
  connection db_;
  std::shared_ptr<query_gate> gate_;
  std::shared_ptr<std::atomic<int>> queries_;
};

// ------------------------------------------------------------------ the keyspace and clock

/// The users keyspace: values of type user, loaded by user_source. Its default TTL comes from
/// the configuration (config.keyspaces["users"].default_ttl).
struct users {
  static constexpr std::string_view name = "users";
  using value_type = user;
  std::int64_t max_bytes = 8 << 20;  // 8 MiB for the main cache
  user_source source;
};

using cache = distcache::engine<users>;

/// A clock that moves only when the program advances it, so TTL expiry shows deterministically.
class manual_clock final : public distcache::clock_source {
 public:
  [[nodiscard]] distcache::time_point now() const noexcept override {
    return distcache::time_point(distcache::duration(ticks_.load()));
  }
  void advance(distcache::duration d) noexcept { ticks_.fetch_add(d.count()); }

 private:
  std::atomic<distcache::duration::rep> ticks_{
      std::chrono::duration_cast<distcache::duration>(1000h).count()};
};

// ------------------------------------------------------------------ printing and checking

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::cout << "FAIL: " << what << '\n';
}

/// Checks a source's query count after each step. After a wrong count, later steps are judged
/// against what was seen, so that one wrong step gives one FAIL line.
class query_check {
 public:
  explicit query_check(const user_source& src) : src_(src) {}
  void operator()(int want, std::string_view step) {
    const int seen = src_.queries();
    expect(seen == want + drift_, std::string(step) + ": expected " +
                                      std::to_string(want + drift_) + " source queries, saw " +
                                      std::to_string(seen));
    drift_ = seen - want;
  }

 private:
  const user_source& src_;
  int drift_ = 0;
};

/// One aligned line: `[tag]  what   source queries: n`.
void show(std::string_view tag, const std::string& what, const user_source& src,
          std::string_view label = "source") {
  std::cout << std::left << std::setw(18) << ("[" + std::string(tag) + "]") << std::setw(50) << what
            << label << " queries: " << src.queries() << '\n';
}

/// An explanation under a step.
void note(const std::string& text) { std::cout << std::string(18, ' ') << text << '\n'; }

using user_result = distcache::result<distcache::value_ptr<user>>;

std::string text_of(const user_result& r) {
  if (r) return (*r)->name + " (age " + std::to_string((*r)->age) + ")";
  if (r.error() == distcache::errc::not_found) return "not_found";
  if (r.error() == distcache::errc::invalid_key) return "invalid_key";
  return "error: " + r.error().message();
}

bool is_user(const user_result& r, std::string_view name, int age) {
  return r && (*r)->name == name && (*r)->age == age;
}

// ------------------------------------------------------------------ the walk-through

int run(const std::string& path) {
  // The database: created here, written through the program's own connection.
  connection admin =
      open_database(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX);
  exec(admin.get(),
       "DROP TABLE IF EXISTS users;"
       "CREATE TABLE users(id TEXT PRIMARY KEY, name TEXT, age INT);"
       "INSERT INTO users VALUES ('user:1', 'Ada', 36), ('user:2', 'Grace', 45),"
       " ('user:3', 'Edsger', 40);");
  std::cout << "database " << path << ": table users with user:1, user:2, user:3\n\n";

  auto gate = std::make_shared<query_gate>();
  user_source source(path, gate);
  auto clock = std::make_shared<manual_clock>();

  distcache::config cfg;
  cfg.threads = 2;
  cfg.fetch_threads = 4;
  cfg.clock = clock;                         // expiry follows the manual clock
  cfg.keyspaces["users"].default_ttl = 30s;  // values live 30 s unless told otherwise
  // No warm-up of the keys read so far when the keyspace is redefined (step 7): it would load
  // them from the new source at once, beside step 7's own get, and the counts checked below
  // would depend on which came first (docs/freshness.md#warm-up).
  cfg.keyspaces["users"].warmup = distcache::warmup_options{.max_hot_keys = 0};
  cache c{cfg, users{.source = source}};
  query_check queries(source);
  if (auto r = c.start(); !r) {
    std::cout << "FAIL: start: " << r.error().message() << '\n';
    return 1;
  }

  // 1. A miss: one query.
  user_result r = c.get<users>("user:1");
  show("first read", "get user:1 -> " + text_of(r), source);
  expect(is_user(r, "Ada", 36), "get user:1 should be Ada (age 36)");
  queries(1, "first read");

  // 2. A hit: no query.
  r = c.get<users>("user:1");
  show("cached", "get user:1 -> " + text_of(r), source);
  expect(is_user(r, "Ada", 36), "get user:1 should be Ada (age 36)");
  queries(1, "cached read");

  // 3. 16 threads read a cold key at once. The query is held until all 16 gets have missed
  // (bounded by a deadline), so the result cannot depend on how the threads happen to run.
  {
    constexpr int callers = 16;
    const auto before = c.stats<users>();
    // The engine counts a miss in `loads` once the caller has joined the key's flight, so when
    // `loads` has grown by 16, every caller is waiting for this one query.
    gate->hold_until([&c, &before] { return c.stats<users>().loads >= before.loads + callers; });
    std::latch go(callers);
    std::vector<user_result> results(callers, user_result(distcache::errc::timeout));
    std::vector<std::thread> threads;
    threads.reserve(callers);
    for (int i = 0; i < callers; ++i) {
      threads.emplace_back([&, i] {
        go.arrive_and_wait();
        results[i] = c.get<users>("user:2");
      });
    }
    for (auto& t : threads) t.join();
    gate->open();
    const auto after = c.stats<users>();
    int grace = 0;
    for (const auto& x : results) grace += is_user(x, "Grace", 45) ? 1 : 0;
    show("16 at once", "get user:2 x16 -> " + std::to_string(grace) + " x Grace (age 45)", source);
    note(std::to_string(after.loads - before.loads) + " misses shared " +
         std::to_string(after.loads_deduped - before.loads_deduped) + " load");
    expect(!gate->timed_out, "the 16 gets did not all miss within the deadline");
    expect(grace == callers, "all 16 callers should get Grace (age 45)");
    expect(after.cache_hits == before.cache_hits, "none of the 16 gets should be a cache hit");
    expect(after.loads_deduped - before.loads_deduped == 1, "the 16 misses should share 1 load");
    queries(2, "16 concurrent reads of a cold key");
  }

  // 4. A missing user: not_found, and not cached, so the next read queries again.
  r = c.get<users>("user:404");
  show("missing", "get user:404 -> " + text_of(r), source);
  expect(!r && r.error() == distcache::errc::not_found, "get user:404 should be not_found");
  queries(3, "missing user");
  r = c.get<users>("user:404");
  show("missing again", "get user:404 -> " + text_of(r) + " (not cached)", source);
  expect(!r && r.error() == distcache::errc::not_found, "get user:404 should be not_found");
  queries(4, "missing user again");

  // 5. Expiry: user:1 was stored at t=0 with the keyspace's 30 s TTL.
  clock->advance(29s);
  r = c.get<users>("user:1");
  show("t=29s", "get user:1 -> " + text_of(r) + " (still fresh)", source);
  expect(is_user(r, "Ada", 36), "get user:1 at t=29s should be Ada (age 36)");
  queries(4, "read at t=29s");
  clock->advance(2s);
  r = c.get<users>("user:1");
  show("t=31s", "get user:1 -> " + text_of(r) + " (expired: reloaded)", source);
  expect(is_user(r, "Ada", 36), "get user:1 at t=31s should be Ada (age 36)");
  queries(5, "read at t=31s");

  // 6. The database changes behind the cache: the cached value stays until remove().
  exec(admin.get(), "UPDATE users SET age = 37 WHERE id = 'user:1';");
  r = c.get<users>("user:1");
  show("db UPDATE", "get user:1 -> " + text_of(r) + " (cached, stale)", source);
  expect(is_user(r, "Ada", 36), "get user:1 after the UPDATE should still be the cached value");
  queries(5, "read after UPDATE");
  expect(c.remove<users>("user:1").has_value(), "remove user:1 should succeed");
  r = c.get<users>("user:1");
  show("remove", "get user:1 -> " + text_of(r), source);
  expect(is_user(r, "Ada", 37), "get user:1 after remove should be Ada (age 37)");
  queries(6, "read after remove");

  // 7. A new definition of the keyspace at runtime: the cache is dropped and reads go to the
  // new source (here a second connection with its own query counter). The engine keeps the old
  // definition, and so the old connection, until the engine is destroyed.
  user_source source_v2(path, gate);
  query_check queries_v2(source_v2);
  if (auto u = c.update_keyspace(users{.source = source_v2}); !u) {
    expect(false, "update_keyspace: " + u.error().message());
  }
  r = c.get<users>("user:1");
  show("update_keyspace", "get user:1 -> " + text_of(r), source_v2, "new source");
  note("old source queries: " + std::to_string(source.queries()) + " (unchanged)");
  expect(is_user(r, "Ada", 37), "get user:1 after update_keyspace should be Ada (age 37)");
  queries(6, "old source after update_keyspace");
  queries_v2(1, "new source after update_keyspace");

  // 8. An empty key is rejected before the cache or the source is asked.
  r = c.get<users>("");
  show("empty key", "get \"\" -> " + text_of(r), source_v2, "new source");
  expect(!r && r.error() == distcache::errc::invalid_key, "get \"\" should be invalid_key");
  queries_v2(1, "empty key");

  // Statistics are cumulative over the engine's life, across update_keyspace.
  const distcache::keyspace_stats s = c.stats<users>();
  std::cout << "\nstats of keyspace 'users':\n"
            << "  gets " << s.gets << ", cache_hits " << s.cache_hits << ", loads " << s.loads
            << ", loads_deduped " << s.loads_deduped << ", local_loads " << s.local_loads
            << ", local_load_errs " << s.local_load_errs << "\n"
            << "  main cache: " << s.main_cache_items << " item(s), " << s.main_cache_bytes
            << " bytes charged\n";
  // gets: 1 + 1 + 16 + 2 + 2 + 1 + 1 + 1 = 25 (the empty key is rejected before counting).
  expect(s.gets == 25, "stats.gets should be 25, is " + std::to_string(s.gets));
  expect(s.cache_hits == 3, "stats.cache_hits should be 3, is " + std::to_string(s.cache_hits));
  expect(s.loads == 22, "stats.loads should be 22, is " + std::to_string(s.loads));
  expect(s.loads_deduped == 7,
         "stats.loads_deduped should be 7, is " + std::to_string(s.loads_deduped));
  expect(s.local_loads == 5, "stats.local_loads should be 5, is " + std::to_string(s.local_loads));
  expect(s.main_cache_items == 1,
         "stats.main_cache_items should be 1, is " + std::to_string(s.main_cache_items));

  if (auto st = c.stop(); !st) expect(false, "stop: " + st.error().message());
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const bool keep = argc > 1;
  const std::string path =
      keep ? argv[1] : "/tmp/distcache-example-" + std::to_string(::getpid()) + ".db";
  int rc = 1;
  try {
    rc = run(path);
  } catch (const std::exception& e) {
    std::cout << "FAIL: " << e.what() << '\n';
    rc = 1;
  }
  if (!keep) std::remove(path.c_str());
  std::cout << (rc == 0 ? "\nall checks passed\n" : "\nsome checks failed\n");
  return rc;
}
