// distcache — the compiled part of the library. With
// DISTCACHE_SEPARATE_COMPILATION defined everywhere, include this header in
// exactly one translation unit of the program (or link distcache::compiled,
// which does).
#ifndef DISTCACHE_SRC_HPP
#define DISTCACHE_SRC_HPP

// Without DISTCACHE_SEPARATE_COMPILATION every definition below is inline and
// already reached through the headers, so including this header changes
// nothing.
#include <distcache/cluster/impl/controller.ipp>
#include <distcache/core/impl/admin_pages.ipp>
#include <distcache/core/impl/batched_loads.ipp>
#include <distcache/core/impl/cluster_operations.ipp>
#include <distcache/core/impl/engine_core.ipp>
#include <distcache/core/impl/freshness.ipp>
#include <distcache/core/impl/read_path.ipp>
#include <distcache/core/impl/telemetry.ipp>
#include <distcache/core/impl/warm_up.ipp>
#include <distcache/core/impl/write_path.ipp>
#include <distcache/detail/impl/fetch_pool.ipp>
#include <distcache/detail/impl/waiters.ipp>
#include <distcache/protection/impl/source_guard.ipp>
#include <distcache/transport/impl/http.ipp>

#endif  // DISTCACHE_SRC_HPP
