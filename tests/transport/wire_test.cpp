#include <distcache/transport/protocol.hpp>
#include <distcache/transport/wire.hpp>
//
#include <doctest/doctest.h>

#include <cstdint>
#include <distcache/error.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using distcache::errc;
using distcache::error_code;
using distcache::transport::reply_item;
using distcache::transport::set_body_view;
using distcache::transport::wire_errc;
using distcache::transport::wire_limits;
namespace tr = distcache::transport;

namespace {

std::string hex(std::string_view bytes) {
  static constexpr std::string_view digits = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(digits[u >> 4]);
    out.push_back(digits[u & 15]);
  }
  return out;
}

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

std::string key_list(const std::vector<std::string>& keys) {
  std::string out;
  tr::encode_key_list(out, keys);
  return out;
}

// The three decoders that take a whole body, run on `body`; true when all
// of them reject it.
bool every_decoder_rejects(std::string_view body, const wire_limits& limits) {
  std::vector<std::string> keys;
  reply_item item;
  std::vector<reply_item> items;
  set_body_view set;
  return tr::decode_key_list(body, limits, keys) && tr::decode_get_reply(body, limits, item) &&
         tr::decode_get_many_reply(body, limits, items) && tr::decode_set_body(body, limits, set);
}

}  // namespace

TEST_CASE("key list encodes as a big-endian count and length-prefixed keys") {
  const std::string body = key_list({"a", "bc"});
  CHECK(hex(body) ==
        "00000002"
        "00000001"
        "61"
        "00000002"
        "6263");
  std::vector<std::string> keys{"stale"};
  REQUIRE_FALSE(tr::decode_key_list(body, {}, keys));
  CHECK(keys == std::vector<std::string>{"a", "bc"});
}

TEST_CASE("key list round-trips binary keys and an empty list") {
  const std::vector<std::string> in{std::string("\0\x01\xff", 3), "user:1", std::string(1024, 'k')};
  std::vector<std::string> out;
  REQUIRE_FALSE(tr::decode_key_list(key_list(in), {}, out));
  CHECK(out == in);
  REQUIRE_FALSE(tr::decode_key_list(key_list({}), {}, out));
  CHECK(out.empty());
}

TEST_CASE("key list rejects empty, oversized and too many keys") {
  std::vector<std::string> out;
  wire_limits limits;
  limits.max_key_bytes = 4;
  limits.max_batch = 2;
  CHECK_FALSE(tr::decode_key_list(key_list({"abcd"}), limits, out));
  CHECK(tr::decode_key_list(key_list({"abcde"}), limits, out) == wire_errc::key_too_long);
  CHECK(tr::decode_key_list(unhex("0000000100000000"), limits, out) == wire_errc::empty_key);
  CHECK(tr::decode_key_list(key_list({"a", "b", "c"}), limits, out) == wire_errc::batch_too_large);
  // A count the body cannot hold is rejected before anything is reserved.
  limits.max_batch = 1000;
  CHECK(tr::decode_key_list(unhex("000003e8"), limits, out) == wire_errc::truncated);
  CHECK(tr::decode_key_list(unhex("ffffffff"), limits, out) == wire_errc::batch_too_large);
  CHECK(tr::decode_key_list(key_list({"a"}) + "x", limits, out) == wire_errc::trailing_bytes);
  CHECK(tr::decode_key_list("", limits, out) == wire_errc::truncated);
}

TEST_CASE("get reply items encode status, ttl, length and value") {
  std::string body;
  tr::encode_get_reply(body, reply_item::found("hi", 1500));
  CHECK(hex(body) ==
        "00"
        "00000000000005dc"
        "00000002"
        "6869");
  body.clear();
  tr::encode_get_reply(body, reply_item::found("", -1));
  CHECK(hex(body) ==
        "00"
        "ffffffffffffffff"
        "00000000");
  body.clear();
  tr::encode_get_reply(body, reply_item::missing());
  CHECK(hex(body) == "01");
  body.clear();
  tr::encode_get_reply(body, reply_item::failed(errc::data_source_failed));
  CHECK(hex(body) ==
        "02"
        "0005");
  body.clear();
  tr::encode_get_reply(body, reply_item::still_loading());
  CHECK(hex(body) == "03");
}

TEST_CASE("get reply round-trips every kind of item") {
  const std::vector<reply_item> cases{reply_item::found("value", 0),
                                      reply_item::found("v", -1),
                                      reply_item::found(std::string(70000, 'x'), 123456789),
                                      reply_item::missing(),
                                      reply_item::still_loading(),
                                      reply_item::failed(errc::data_source_rate_limited)};
  for (const auto& in : cases) {
    std::string body;
    tr::encode_get_reply(body, in);
    reply_item out = reply_item::found("stale", 5);
    REQUIRE_FALSE(tr::decode_get_reply(body, {}, out));
    CHECK(out == in);
  }
}

TEST_CASE("get-many reply holds a count and the items in order") {
  const std::vector<reply_item> in{reply_item::found("a", 10), reply_item::missing(),
                                   reply_item::failed(errc::timeout)};
  std::string body;
  tr::encode_get_many_reply(body, in);
  CHECK(hex(body) ==
        "00000003"
        "00"
        "000000000000000a"
        "00000001"
        "61"
        "01"
        "02"
        "0006");
  std::vector<reply_item> out;
  REQUIRE_FALSE(tr::decode_get_many_reply(body, {}, out));
  CHECK(out == in);
  body.clear();
  tr::encode_get_many_reply(body, {});
  REQUIRE_FALSE(tr::decode_get_many_reply(body, {}, out));
  CHECK(out.empty());
}

TEST_CASE("reply decoding rejects bad status, ttl, error code, sizes and trailing bytes") {
  reply_item item;
  std::vector<reply_item> items;
  wire_limits limits;
  limits.max_value_bytes = 3;
  limits.max_batch = 1;
  CHECK(tr::decode_get_reply(unhex("04"), limits, item) == wire_errc::bad_status);
  CHECK(tr::decode_get_reply(unhex("ff"), limits, item) == wire_errc::bad_status);
  CHECK(tr::decode_get_reply(unhex("0300"), limits, item) == wire_errc::trailing_bytes);
  CHECK(tr::decode_get_reply(unhex("00fffffffffffffffe00000000"), limits, item) ==
        wire_errc::bad_ttl);
  CHECK(tr::decode_get_reply(unhex("020000"), limits, item) == wire_errc::bad_error_code);
  CHECK(tr::decode_get_reply(unhex("00000000000000000000000004"), limits, item) ==
        wire_errc::value_too_large);
  CHECK(tr::decode_get_reply(unhex("0101"), limits, item) == wire_errc::trailing_bytes);
  CHECK(tr::decode_get_reply("", limits, item) == wire_errc::truncated);
  CHECK(tr::decode_get_many_reply(unhex("000000020101"), limits, items) ==
        wire_errc::batch_too_large);
  CHECK(tr::decode_get_many_reply(unhex("00000001"), limits, items) == wire_errc::truncated);
}

TEST_CASE("reply with a ttl below -1 is sent as already expired") {
  std::string body;
  tr::encode_get_reply(body, reply_item::found("v", -7));
  reply_item out;
  REQUIRE_FALSE(tr::decode_get_reply(body, {}, out));
  CHECK(out.ttl_ms == 0);
}

TEST_CASE("set body carries key, ttl and value") {
  std::string body;
  tr::encode_set_body(body, "k", "val", -1);
  CHECK(hex(body) ==
        "00000001"
        "6b"
        "ffffffffffffffff"
        "00000003"
        "76616c");
  set_body_view out;
  REQUIRE_FALSE(tr::decode_set_body(body, {}, out));
  CHECK(out.key == "k");
  CHECK(out.value == "val");
  CHECK(out.ttl_ms == -1);

  std::string head;
  tr::encode_set_body_head(head, "k", -1, 3);
  CHECK(head + "val" == body);
}

TEST_CASE("set body rejects bad keys, ttl, value size and trailing bytes") {
  set_body_view out;
  wire_limits limits;
  limits.max_key_bytes = 2;
  limits.max_value_bytes = 2;
  std::string body;
  tr::encode_set_body(body, "abc", "v", 1);
  CHECK(tr::decode_set_body(body, limits, out) == wire_errc::key_too_long);
  body.clear();
  tr::encode_set_body(body, "ab", "vvv", 1);
  CHECK(tr::decode_set_body(body, limits, out) == wire_errc::value_too_large);
  body.clear();
  tr::encode_set_body(body, "ab", "v", -2);
  CHECK(tr::decode_set_body(body, limits, out) == wire_errc::bad_ttl);
  body.clear();
  tr::encode_set_body(body, "ab", "v", 0);
  CHECK_FALSE(tr::decode_set_body(body, limits, out));
  CHECK(tr::decode_set_body(body + "z", limits, out) == wire_errc::trailing_bytes);
  CHECK(tr::decode_set_body(unhex("00000000"), limits, out) == wire_errc::empty_key);
}

TEST_CASE("wire errors have their own category and readable messages") {
  const error_code ec = wire_errc::key_too_long;
  CHECK(std::string(ec.category().name()) == "distcache.wire");
  CHECK(ec.message() == "a key is longer than max_key_bytes");
  CHECK(ec != errc::invalid_key);
}

TEST_CASE("every strict prefix of a valid body is rejected as truncated") {
  std::vector<std::string> bodies;
  bodies.push_back(key_list({"alpha", "b", std::string(300, 'c')}));
  std::string s;
  tr::encode_set_body(s, "key", "some value", 42);
  bodies.push_back(s);
  s.clear();
  tr::encode_get_reply(s, reply_item::found("payload", 7));
  bodies.push_back(s);
  s.clear();
  tr::encode_get_many_reply(
      s, std::vector<reply_item>{reply_item::found("x", 1), reply_item::missing(),
                                 reply_item::failed(errc::timeout)});
  bodies.push_back(s);

  std::vector<std::string> keys;
  set_body_view set;
  reply_item item;
  std::vector<reply_item> items;
  for (std::size_t n = 0; n < bodies[0].size(); ++n)
    CHECK(tr::decode_key_list(std::string_view(bodies[0]).substr(0, n), {}, keys));
  for (std::size_t n = 0; n < bodies[1].size(); ++n)
    CHECK(tr::decode_set_body(std::string_view(bodies[1]).substr(0, n), {}, set));
  for (std::size_t n = 0; n < bodies[2].size(); ++n)
    CHECK(tr::decode_get_reply(std::string_view(bodies[2]).substr(0, n), {}, item));
  for (std::size_t n = 0; n < bodies[3].size(); ++n)
    CHECK(tr::decode_get_many_reply(std::string_view(bodies[3]).substr(0, n), {}, items));
}

TEST_CASE("random bytes and mutations never crash and decode only canonically") {
  std::mt19937_64 rng(20261126);
  wire_limits limits;
  limits.max_value_bytes = 1 << 16;
  std::vector<std::string> keys;
  set_body_view set;
  reply_item item;
  std::vector<reply_item> items;
  std::string seed;
  tr::encode_key_list(seed, std::vector<std::string>{"k1", "key-2"});
  tr::encode_get_many_reply(seed, std::vector<reply_item>{reply_item::found("v", 3)});

  std::size_t rejected = 0;
  std::size_t decoded = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string body;
    if (round % 2 == 0) {  // pure noise, biased towards small lengths
      body.resize(rng() % 64);
      for (auto& c : body) c = static_cast<char>(rng() % 4 == 0 ? 0 : rng());
    } else {  // a valid body with a few bytes changed, cut or extended
      body = seed;
      for (int m = 0; m < 3; ++m) body[rng() % body.size()] = static_cast<char>(rng());
      if (rng() % 2) body.resize(rng() % (body.size() + 8), '\0');
    }
    if (!tr::decode_key_list(body, limits, keys)) {
      ++decoded;
      std::string again;
      tr::encode_key_list(again, keys);
      CHECK(again == body);
    } else {
      ++rejected;
    }
    if (!tr::decode_set_body(body, limits, set)) {
      std::string again;
      tr::encode_set_body(again, set.key, set.value, set.ttl_ms);
      CHECK(again == body);
    }
    if (!tr::decode_get_reply(body, limits, item)) {
      std::string again;
      tr::encode_get_reply(again, item);
      CHECK(again == body);
    }
    if (!tr::decode_get_many_reply(body, limits, items)) {
      std::string again;
      tr::encode_get_many_reply(again, items);
      CHECK(again == body);
    }
  }
  CHECK(rejected > decoded);
}

TEST_CASE("bodies that claim more than they hold are rejected without large allocations") {
  wire_limits limits;
  // count 1000, each key claiming 1 KiB, but nothing behind the claims.
  CHECK(every_decoder_rejects(unhex("000003e800000400"), limits));
  // a value claiming 64 MiB with 3 bytes present
  reply_item item;
  CHECK(tr::decode_get_reply(unhex("00ffffffffffffffff04000000616263"), limits, item) ==
        wire_errc::truncated);
}

TEST_CASE("keyspace path segments are percent-encoded and decoded") {
  namespace d = distcache::detail;
  std::string enc;
  d::append_path_segment(enc, "users");
  CHECK(enc == "users");
  enc.clear();
  d::append_path_segment(enc, std::string("a/b c%\xff", 7));
  CHECK(enc == "a%2Fb%20c%25%FF");
  std::string dec;
  REQUIRE(d::decode_path_segment(enc, dec));
  CHECK(dec == std::string("a/b c%\xff", 7));
  CHECK(d::decode_path_segment("%2f%2F", dec));
  CHECK(dec == "//");
  CHECK_FALSE(d::decode_path_segment("%", dec));
  CHECK_FALSE(d::decode_path_segment("ab%2", dec));
  CHECK_FALSE(d::decode_path_segment("%zz", dec));
}

TEST_CASE("every errc has a protocol name that maps back to it") {
  namespace d = distcache::detail;
  for (int i = 1; i <= static_cast<int>(errc::overloaded); ++i) {
    const auto e = static_cast<errc>(i);
    const auto name = d::errc_name(e);
    CAPTURE(i);
    REQUIRE_FALSE(name.empty());
    CHECK(d::errc_from_name(name) == e);
  }
  CHECK(d::errc_name(errc::keyspace_not_found) == "keyspace_not_found");
  CHECK_FALSE(d::errc_from_name("no_such_error"));
  CHECK(d::errc_name(static_cast<errc>(999)).empty());
}

TEST_CASE("decimal header values parse strictly") {
  namespace d = distcache::detail;
  CHECK(d::parse_decimal_u64("0") == 0U);
  CHECK(d::parse_decimal_u64("18446744073709551615") == 18446744073709551615ULL);
  CHECK_FALSE(d::parse_decimal_u64("18446744073709551616"));
  CHECK_FALSE(d::parse_decimal_u64(""));
  CHECK_FALSE(d::parse_decimal_u64("-1"));
  CHECK_FALSE(d::parse_decimal_u64(" 1"));
  CHECK_FALSE(d::parse_decimal_u64("1x"));
}

TEST_CASE("wire limits are validated with the field name") {
  wire_limits l;
  CHECK(tr::validate(l, "opts").empty());
  l.max_key_bytes = 0;
  CHECK(tr::validate(l, "opts") == "opts.max_key_bytes: must be between 1 and 65536, got 0");
  l = {};
  l.max_header_bytes = 100;
  CHECK(tr::validate(l, "opts").find("max_header_bytes") != std::string::npos);
  l = {};
  l.max_batch = 0;
  CHECK(tr::validate(l, "opts").find("max_batch") != std::string::npos);
}
