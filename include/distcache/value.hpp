// distcache — value_ptr: the handle a get hands out.
#ifndef DISTCACHE_VALUE_HPP
#define DISTCACHE_VALUE_HPP

#include <memory>

namespace distcache {

/// A shared read-only handle to a cached value. A cache hit hands out the
/// decoded object itself, without copying or re-parsing it; the object lives
/// as long as the cache or any caller holds a handle.
template <class T>
using value_ptr = std::shared_ptr<const T>;

}  // namespace distcache

#endif  // DISTCACHE_VALUE_HPP
