// Compiled against an installed distcache: proves the exported target carries
// the include path, the C++20 requirement and the Boost dependencies.
#include <distcache/distcache.hpp>

static_assert(sizeof(distcache::errc) > 0);

int main() { return 0; }
