// distcache — umbrella header.
#ifndef DISTCACHE_DISTCACHE_HPP
#define DISTCACHE_DISTCACHE_HPP

#include <distcache/cache/stats.hpp>
#include <distcache/clock.hpp>
#include <distcache/cluster/ring.hpp>
#include <distcache/config.hpp>
#include <distcache/engine.hpp>
#include <distcache/error.hpp>
#include <distcache/keyspace.hpp>
#include <distcache/policies.hpp>
#include <distcache/serializers.hpp>

#endif  // DISTCACHE_DISTCACHE_HPP
