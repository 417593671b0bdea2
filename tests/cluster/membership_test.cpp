#include <distcache/cluster/detail/membership.hpp>
//
#include <doctest/doctest.h>

#include <string>
#include <vector>

TEST_CASE("membership admits answering peers, drops failing ones, and versions the ring") {
  distcache::detail::membership m("self:1", 64, 2);
  const auto v0 = m.current()->version();
  CHECK(m.current()->nodes() == std::vector<std::string>{"self:1"});
  CHECK(m.on_discovered({"self:1", "p:2", "q:3"}).empty());  // candidates only
  CHECK(m.known_peers().size() == 2);
  CHECK(m.alive_peers().empty());
  auto ev = m.on_success("p:2");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == distcache::peer_event_kind::joined);
  CHECK(ev[0].ring_version == m.current()->version());
  CHECK(m.current()->version() != v0);
  CHECK(m.current()->nodes().size() == 2);
  CHECK(m.on_failure("p:2").empty());  // one failure is not enough
  CHECK(m.on_success("p:2").empty());  // and a success resets the count
  CHECK(m.on_failure("p:2").empty());
  ev = m.on_failure("p:2");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == distcache::peer_event_kind::left);
  CHECK(m.current()->version() == v0);     // same members, same version
  CHECK(m.on_success("p:2").size() == 1);  // back when it answers again
  ev = m.on_discovered({"q:3"});           // p:2 is no longer listed
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == distcache::peer_event_kind::left);
  CHECK(m.known_peers() == std::vector<std::string>{"q:3"});
  CHECK(m.on_success("unknown:9").empty());
}
