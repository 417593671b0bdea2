// The doctest runner shared by every test file of distcache_tests, and the
// one place that knows where the test sources are.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "support/source_dir.hpp"

const char* distcache::test::source_dir() noexcept { return DISTCACHE_TEST_SOURCE_DIR; }
