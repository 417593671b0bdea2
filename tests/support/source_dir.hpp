#pragma once

namespace distcache::test {

/// The absolute path of tests/ in the source tree (defined in main.cpp, the
/// only source compiled with it, so no other object depends on where the
/// repository lives).
const char* source_dir() noexcept;

}  // namespace distcache::test
