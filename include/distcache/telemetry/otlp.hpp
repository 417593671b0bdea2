// distcache — telemetry::otlp: spans and metrics exported over OTLP/HTTP
// with protobuf encoding to an OpenTelemetry Collector (docs/operations.md).
#ifndef DISTCACHE_TELEMETRY_OTLP_HPP
#define DISTCACHE_TELEMETRY_OTLP_HPP

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <distcache/config.hpp>
#include <distcache/detail/config.hpp>
#include <distcache/error.hpp>
#include <distcache/telemetry/detail/otlp_protobuf.hpp>
#include <distcache/telemetry/telemetry.hpp>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace distcache::telemetry {

namespace detail {

/// The OTLP/HTTP exporter behind telemetry::otlp.
///
/// The engine hands it finished spans from any thread: span() takes a lock
/// held only to append to a bounded queue, and drops (counting
/// spans_dropped) when the queue is full or the exporter has stopped. A
/// thread of its own sends every export_interval — and sooner once a full
/// batch is queued — the queued spans in requests of at most
/// max_batch_spans, then the engine's metrics (cumulative). Each request
/// opens a connection, has `timeout` for connect, send and the status line,
/// and is not retried: a failure (refused, timeout, non-2xx) counts in
/// exports_failed and its spans in spans_dropped. A get never waits for the
/// collector.
class otlp_exporter final : public sink {
 public:
  otlp_exporter(telemetry_options options, logger log)
      : options_(std::move(options)), log_(std::move(log)) {
    auto url = distcache::detail::parse_http_url(options_.otlp.endpoint);
    if (!url) {
      throw config_error(
          "config.telemetry.otlp.endpoint: must be http://host[:port][/path], got \"" +
          options_.otlp.endpoint.substr(0, 120) + "\"");
    }
    url_ = std::move(*url);
    queue_.reserve(std::min<std::size_t>(options_.otlp.max_queue_spans, 4096));
  }
  otlp_exporter(const otlp_exporter&) = delete;
  otlp_exporter& operator=(const otlp_exporter&) = delete;
  ~otlp_exporter() override { stop(); }

  void start(node_identity self, collect_fn collect) override {
    std::lock_guard lock(mutex_);
    if (started_) return;
    started_ = true;
    self_ = std::move(self);
    collect_ = std::move(collect);
    thread_ = std::thread([this] { run(); });
  }

  void stop() noexcept override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void span(span_record&& s) noexcept override {
    if (!options_.traces) return;
    bool full_batch = false;
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || queue_.size() >= options_.otlp.max_queue_spans) {
        ++stats_.spans_dropped;
        return;
      }
      try {
        queue_.push_back(std::move(s));
      } catch (...) {
        ++stats_.spans_dropped;
        return;
      }
      full_batch = queue_.size() == options_.otlp.max_batch_spans;
    }
    if (full_batch) wake_.notify_one();
  }

  [[nodiscard]] exporter_stats stats() const noexcept override {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  void run() {
    for (;;) {
      std::vector<span_record> batch;
      bool last = false;
      {
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, options_.otlp.export_interval,
                       [&] { return stopping_ || queue_.size() >= options_.otlp.max_batch_spans; });
        last = stopping_;
        batch.swap(queue_);
      }
      try {
        send_spans(batch);
        // Metrics go at each interval and once more at stop, not for every
        // full batch of spans.
        if (options_.metrics && (last || due_for_metrics())) send_metrics();
      } catch (const std::exception& e) {  // out of memory: this round is lost
        distcache::detail::log_quietly(log_, log_level::warning,
                                       std::string("telemetry: export failed: ") + e.what());
      }
      if (last) return;
    }
  }

  bool due_for_metrics() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_metrics_) return false;
    next_metrics_ = now + options_.otlp.export_interval;
    return true;
  }

  void send_spans(const std::vector<span_record>& spans) {
    const std::size_t max = options_.otlp.max_batch_spans;
    for (std::size_t i = 0; i < spans.size(); i += max) {
      const std::size_t n = std::min(max, spans.size() - i);
      const bool ok = post("/v1/traces", encode_traces(self_, std::span(spans).subspan(i, n)));
      std::lock_guard lock(mutex_);
      if (ok) {
        stats_.spans_exported += n;
      } else {
        stats_.spans_dropped += n;
      }
    }
  }

  void send_metrics() {
    std::string body;
    try {
      body = encode_metrics(self_, collect_());
    } catch (const std::exception& e) {
      distcache::detail::log_quietly(
          log_, log_level::warning,
          std::string("telemetry: collecting metrics failed: ") + e.what());
      return;
    }
    if (post("/v1/metrics", body)) {
      std::lock_guard lock(mutex_);
      ++stats_.metric_exports;
    }
  }

  // One request; true on a 2xx answer. Logs when exports start failing and
  // when they work again, not at every failure.
  bool post(std::string_view path, const std::string& body) {
    std::string why;
    const bool ok = exchange(path, body, why);
    if (!ok) {
      std::lock_guard lock(mutex_);
      ++stats_.exports_failed;
    }
    if (ok != healthy_) {
      healthy_ = ok;
      distcache::detail::log_quietly(
          log_, ok ? log_level::info : log_level::warning,
          ok ? "telemetry: exports to " + options_.otlp.endpoint + " work again"
             : "telemetry: export to " + options_.otlp.endpoint + std::string(path) +
                   " failed: " + why + " (spans are dropped and counted until it works)");
    }
    return ok;
  }

  bool exchange(std::string_view path, const std::string& body, std::string& why) {
    namespace ip = net::ip;
    std::string request;
    request.reserve(body.size() + 256);
    request += "POST ";
    request += url_.path;
    request += path;
    request += " HTTP/1.1\r\nHost: ";
    request += url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
    request += ':';
    request += std::to_string(url_.port);
    request += "\r\nContent-Type: application/x-protobuf\r\nContent-Length: ";
    request += std::to_string(body.size());
    request += "\r\nConnection: close\r\nUser-Agent: distcache\r\n";
    for (const auto& [name, value] : options_.otlp.headers) {
      request += name;
      request += ": ";
      request += value;
      request += "\r\n";
    }
    request += "\r\n";
    request += body;

    io_.restart();
    ip::tcp::resolver resolver(io_);
    ip::tcp::socket socket(io_);
    std::string response;
    error_code failure = net::error::timed_out;
    bool finished = false;
    auto finish = [&](error_code ec) {
      failure = ec;
      finished = true;
    };
    resolver.async_resolve(
        url_.host, std::to_string(url_.port),
        [&](error_code ec, const ip::tcp::resolver::results_type& endpoints) {
          if (ec) return finish(ec);
          net::async_connect(socket, endpoints, [&](error_code ec2, const ip::tcp::endpoint&) {
            if (ec2) return finish(ec2);
            net::async_write(socket, net::buffer(request), [&](error_code ec3, std::size_t) {
              if (ec3) return finish(ec3);
              net::async_read_until(socket, net::dynamic_buffer(response, 8192), "\r\n",
                                    [&](error_code ec4, std::size_t) { finish(ec4); });
            });
          });
        });
    io_.run_for(options_.otlp.timeout);
    if (!finished) {
      resolver.cancel();
      error_code ignored;
      socket.close(ignored);
      io_.restart();
      io_.run();  // the cancelled handlers
      why = "no answer within " + distcache::detail::format_duration(options_.otlp.timeout);
      return false;
    }
    if (failure) {
      why = failure.message();
      return false;
    }
    // "HTTP/1.1 200 OK"
    const std::string_view line(response);
    if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || line[9] != '2') {
      why = "the collector answered \"" +
            std::string(line.substr(0, std::min<std::size_t>(line.find("\r\n"), 80))) + "\"";
      return false;
    }
    return true;
  }

  const telemetry_options options_;
  const logger log_;
  distcache::detail::http_url url_;
  node_identity self_;
  collect_fn collect_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<span_record> queue_;
  exporter_stats stats_;
  bool started_ = false;
  bool stopping_ = false;
  bool healthy_ = true;
  std::chrono::steady_clock::time_point next_metrics_{};
  net::io_context io_{1};
  std::thread thread_;
};

}  // namespace detail

/// The Telemetry policy that exports spans and metrics over OTLP/HTTP
/// (protobuf) as config.telemetry says (defaults when unset): see
/// detail::otlp_exporter and docs/operations.md.
struct otlp {
  static std::unique_ptr<sink> make(const telemetry_options& options, const logger& log) {
    return std::make_unique<detail::otlp_exporter>(options, log);
  }
};

}  // namespace distcache::telemetry

#endif  // DISTCACHE_TELEMETRY_OTLP_HPP
