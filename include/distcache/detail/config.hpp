// distcache — build configuration: header-only or separately compiled, and
// the `net` namespace alias.
#ifndef DISTCACHE_DETAIL_CONFIG_HPP
#define DISTCACHE_DETAIL_CONFIG_HPP

// Header-only by default: every non-template function is defined inline in
// the headers (through the impl/*.ipp files they include). Define
// DISTCACHE_SEPARATE_COMPILATION in every translation unit and include
// <distcache/src.hpp> in exactly one of them (or link distcache::compiled)
// to compile those definitions once, as Boost.Beast does.
#if defined(DISTCACHE_SEPARATE_COMPILATION)
#define DISTCACHE_HEADER_ONLY 0
#define DISTCACHE_DECL
#else
#define DISTCACHE_HEADER_ONLY 1
#define DISTCACHE_DECL inline
#endif

namespace boost::asio {}

namespace distcache {
/// Boost.Asio, as every distcache header names it.
namespace net = boost::asio;
}  // namespace distcache

#endif  // DISTCACHE_DETAIL_CONFIG_HPP
