#include <distcache/error.hpp>
//
#include <doctest/doctest.h>

#include <set>
#include <string>

using distcache::errc;

TEST_CASE("every errc value has its own readable message in the distcache category") {
  std::set<std::string> seen;
  for (int v = static_cast<int>(errc::keyspace_not_found);
       v <= static_cast<int>(errc::call_inside_read); ++v) {
    distcache::error_code ec = static_cast<errc>(v);
    CHECK(std::string(ec.category().name()) == "distcache");
    CHECK(ec.message() != "unknown distcache error");
    CHECK(ec.message().size() > 20);
    seen.insert(ec.message());
  }
  CHECK(seen.size() == static_cast<std::size_t>(errc::call_inside_read));
}

TEST_CASE("error codes compare equal to their errc enumerator") {
  distcache::error_code ec = errc::not_found;
  CHECK(ec == errc::not_found);
  CHECK(ec != errc::invalid_key);
  CHECK(distcache::make_error_code(errc::timeout).value() == static_cast<int>(errc::timeout));
}

TEST_CASE("an unknown value gets a fallback message instead of undefined behaviour") {
  distcache::error_code ec(999, distcache::error_category());
  CHECK(ec.message() == "unknown distcache error");
}

TEST_CASE("config_error carries invalid_config and the detailed text") {
  distcache::config_error e("config.read_timeout: must be > 0, got 0s");
  CHECK(e.code() == errc::invalid_config);
  CHECK(std::string(e.what()).find("config.read_timeout") != std::string::npos);
}

TEST_CASE("result<T> holds a value or an error") {
  distcache::result<int> ok = 3;
  distcache::result<int> bad = distcache::make_error_code(errc::not_found);
  CHECK(ok.has_value());
  CHECK(*ok == 3);
  CHECK(bad.has_error());
  CHECK(bad.error() == errc::not_found);
}
