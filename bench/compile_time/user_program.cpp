// A user program of the compile-time benchmark: an engine over two (or,
// with THIRD_KEYSPACE, three) keyspaces, started, read (blocking and async),
// written and stopped. With CLUSTER it is a cluster node over transport::http
// with discovery::static_peers.
#include <distcache/engine.hpp>
#ifdef CLUSTER
#include <distcache/transport/http.hpp>
#endif
#include <future>
#include <iostream>

#include "user_keyspaces.hpp"

#ifdef THIRD_KEYSPACE
#define EXTRA_KEYSPACE , labels
#else
#define EXTRA_KEYSPACE
#endif

#ifdef CLUSTER
using cache = distcache::basic_engine<distcache::policies<distcache::discovery::static_peers>,
                                      names, points EXTRA_KEYSPACE>;
#else
using cache = distcache::engine<names, points EXTRA_KEYSPACE>;
#endif

template <class K, class V>
int exercise(cache& c, const V& value) {
  if (!c.put<K>("k", value)) return 1;
  auto hit = c.get<K>("k");
  auto miss = c.get<K>("other");
  std::promise<bool> done;
  c.async_get<K>("third", [&](distcache::error_code ec, distcache::value_ptr<V> v) {
    done.set_value(!ec && v != nullptr);
  });
  if (!done.get_future().get()) return 1;
  return hit && miss ? 0 : 1;
}

int main() {
  distcache::config cfg;
#ifdef CLUSTER
  cfg.cluster.enabled = true;
#endif
  cache c{cfg, names{}, points{}
#ifdef THIRD_KEYSPACE
          ,
          labels{}
#endif
  };
  if (!c.start()) return 1;
  int failures = exercise<names>(c, std::string("v"));
  failures += exercise<points>(c, point{1, 2});
#ifdef THIRD_KEYSPACE
  failures += exercise<labels>(c, std::int64_t{7});
#endif
  std::cout << c.stats<names>().gets << '\n';
  (void)c.stop();
  return failures;
}
