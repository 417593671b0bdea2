// The compiled form of distcache (CMake target distcache::compiled, Meson
// dependency 'distcache-compiled'): every non-template definition, built
// once with DISTCACHE_SEPARATE_COMPILATION.
#include <distcache/src.hpp>
