#include <distcache/discovery/provider.hpp>
//
#include <doctest/doctest.h>

#include <string>
#include <vector>

TEST_CASE("discovery::in_process: copies share one registry; nodes come and go") {
  distcache::discovery::in_process a;
  distcache::discovery::in_process b = a;  // shares a's registry
  distcache::discovery::in_process other;  // a registry of its own
  REQUIRE(a.initialize());
  REQUIRE(a.register_node("n1:1"));
  REQUIRE(b.register_node("n2:2"));
  REQUIRE(b.register_node("n2:2"));  // registering twice lists it once
  CHECK(*a.discover_peers() == std::vector<std::string>{"n1:1", "n2:2"});
  CHECK(other.discover_peers()->empty());
  REQUIRE(a.deregister_node("n1:1"));
  CHECK(*b.discover_peers() == std::vector<std::string>{"n2:2"});
  a.close();
}
