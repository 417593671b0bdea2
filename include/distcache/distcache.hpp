// distcache — umbrella header: the engine, every policy, the HTTP
// transport and the OTLP exporter. A single-node program may include <distcache/engine.hpp> alone
// and never parses Boost.Beast.
#ifndef DISTCACHE_DISTCACHE_HPP
#define DISTCACHE_DISTCACHE_HPP

#include <distcache/clock.hpp>
#include <distcache/cluster/ring.hpp>
#include <distcache/config.hpp>
#include <distcache/engine.hpp>
#include <distcache/error.hpp>
#include <distcache/keyspace.hpp>
#include <distcache/policies.hpp>
#include <distcache/serializers.hpp>
#include <distcache/stats.hpp>
#include <distcache/telemetry/otlp.hpp>
#include <distcache/transport/http.hpp>
#include <distcache/value.hpp>

#endif  // DISTCACHE_DISTCACHE_HPP
