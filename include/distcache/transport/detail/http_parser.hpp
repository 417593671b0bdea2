// distcache — the one HTTP/1.1 parser of the transport, for requests (the
// server) and responses (the client).
#ifndef DISTCACHE_TRANSPORT_DETAIL_HTTP_PARSER_HPP
#define DISTCACHE_TRANSPORT_DETAIL_HTTP_PARSER_HPP

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/optional/optional.hpp>
#include <boost/system/errc.hpp>
#include <cstddef>
#include <cstdint>
#include <distcache/transport/wire.hpp>
#include <string_view>

namespace distcache::detail {

/// A Beast parser that keeps no field container: it hands the start line
/// and each field to `Message` and appends the body to `Message::body`, a
/// string reused across messages, so parsing allocates only when a message
/// is larger than any before it on its connection.
///
/// `Message` provides `on_field(field, name, value)`,
/// `bool on_body_length(std::uint64_t)` (the Content-Length),
/// `bool append_body(std::string_view)` and, for requests,
/// `on_request(verb, method, target, version)`, for responses
/// `on_response(status)`. Headers and bodies are bounded by `limits`; when
/// either body hook returns false (the message may not hold that much
/// memory), parsing stops with `body_refused()`.
template <bool IsRequest, class Message>
class http_message_parser final : public boost::beast::http::basic_parser<IsRequest> {
 public:
  /// The error put() reports when the message refused its body.
  static boost::beast::error_code body_refused() noexcept {
    return boost::system::errc::make_error_code(boost::system::errc::not_enough_memory);
  }

  http_message_parser(Message& message, const transport::wire_limits& limits) : m_(message) {
    this->header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    this->body_limit(static_cast<std::uint64_t>(limits.max_body_bytes));
    this->eager(true);
  }

 private:
  using error_code = boost::beast::error_code;
  using string_view = boost::beast::string_view;
  using field = boost::beast::http::field;

  static std::string_view view(string_view s) noexcept { return {s.data(), s.size()}; }

  void on_request_impl(boost::beast::http::verb method, string_view method_str, string_view target,
                       int version, error_code& /*ec*/) override {
    if constexpr (IsRequest) m_.on_request(method, view(method_str), view(target), version);
  }
  void on_response_impl(int code, string_view /*reason*/, int /*version*/,
                        error_code& /*ec*/) override {
    if constexpr (!IsRequest) m_.on_response(code);
  }
  void on_field_impl(field name, string_view name_string, string_view value,
                     error_code& /*ec*/) override {
    m_.on_field(name, view(name_string), view(value));
  }
  void on_header_impl(error_code& /*ec*/) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code& ec) override {
    if (length && !m_.on_body_length(*length)) ec = body_refused();  // within body_limit
  }
  std::size_t on_body_impl(string_view body, error_code& ec) override {
    if (!m_.append_body(view(body))) {
      ec = body_refused();
      return 0;
    }
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t /*size*/, string_view /*extensions*/,
                            error_code& /*ec*/) override {}
  std::size_t on_chunk_body_impl(std::uint64_t /*remain*/, string_view body,
                                 error_code& ec) override {
    if (!m_.append_body(view(body))) {
      ec = body_refused();
      return 0;
    }
    return body.size();
  }
  void on_finish_impl(error_code& /*ec*/) override {}

  Message& m_;
};

}  // namespace distcache::detail

#endif  // DISTCACHE_TRANSPORT_DETAIL_HTTP_PARSER_HPP
