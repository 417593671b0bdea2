// distcache — the compiled part of the waiters.
#ifndef DISTCACHE_DETAIL_IMPL_WAITERS_IPP
#define DISTCACHE_DETAIL_IMPL_WAITERS_IPP

#include <boost/asio/dispatch.hpp>
#include <distcache/detail/waiters.hpp>

namespace distcache::detail {

void dispatch_job(const net::any_completion_executor& ex, job j) {
  net::dispatch(ex, std::move(j));
}

}  // namespace distcache::detail

#endif  // DISTCACHE_DETAIL_IMPL_WAITERS_IPP
