// What the code fragments of README.md and docs/ take for granted: the `user` type, its
// source and the `users` keyspace of docs/getting-started.md, a `sessions` keyspace, and the
// headers an application includes. Fragments are compiled in a namespace that sees these names
// (tests/docs/extract.py); a fragment that declares its own `users` hides this one.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/describe/class.hpp>
#include <distcache/distcache.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace doc_prelude {

struct user {
  std::string name;
  int age = 0;
};
BOOST_DESCRIBE_STRUCT(user, (), (name, age))

struct user_database {
  std::mutex mutex;
  std::map<std::string, user, std::less<>> rows;
};

struct user_source {
  std::shared_ptr<user_database> db;

  distcache::fetch_result<user> fetch(std::string_view id) {
    std::lock_guard lock(db->mutex);
    auto it = db->rows.find(id);
    if (it == db->rows.end()) return distcache::not_found;
    return it->second;
  }
};

struct users {
  static constexpr std::string_view name = "users";
  using value_type = user;
  std::int64_t max_bytes = 16 << 20;
  user_source source;
};

struct session_source {
  distcache::fetch_result<std::string> fetch(std::string_view id) { return std::string(id); }
};

struct sessions {
  static constexpr std::string_view name = "sessions";
  using value_type = std::string;
  std::int64_t max_bytes = 1 << 20;
  session_source source;
};

using cache_type = distcache::engine<users>;

}  // namespace doc_prelude
