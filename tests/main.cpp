// The doctest runner shared by every test file of distcache_tests, and the
// one place that knows where the test sources are.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "support/source_dir.hpp"

const char* distcache::test::source_dir() noexcept { return DISTCACHE_TEST_SOURCE_DIR; }

namespace {

// Repeats every failure on stderr at the very end of the run. doctest reports
// a failure on stdout where it happens, among thousands of lines; a test
// runner that shows only the tail of a log (CI, meson's --print-errorlogs,
// which prints stdout before stderr) would otherwise hide which check failed.
class failure_summary final : public doctest::IReporter {
 public:
  explicit failure_summary(const doctest::ContextOptions& /*options*/) {}

  void report_query(const doctest::QueryData& /*data*/) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& /*stats*/) override {
    const std::lock_guard lock(mutex_);
    if (failures_.empty()) return;
    std::fprintf(stderr, "\n== %zu failure(s) in this run:\n", failures_.size());
    for (const auto& f : failures_) std::fprintf(stderr, "  %s\n", f.c_str());
    std::fflush(stderr);
  }
  void test_case_start(const doctest::TestCaseData& data) override {
    const std::lock_guard lock(mutex_);
    current_ = data.m_name;
  }
  void test_case_reenter(const doctest::TestCaseData& /*data*/) override {}
  void test_case_end(const doctest::CurrentTestCaseStats& /*stats*/) override {}
  void test_case_exception(const doctest::TestCaseException& e) override {
    record(std::string("exception: ") + e.error_string.c_str());
  }
  void subcase_start(const doctest::SubcaseSignature& /*signature*/) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& a) override {
    if (!a.m_failed) return;
    std::string what = std::string(a.m_file) + ":" + std::to_string(a.m_line) + ": " + a.m_expr;
    if (a.m_decomp.size() > 0) what += std::string(" (") + a.m_decomp.c_str() + ")";
    if (a.m_threw) what += std::string(" threw: ") + a.m_exception.c_str();
    record(what);
  }
  void log_message(const doctest::MessageData& m) override {
    if (m.m_severity & doctest::assertType::is_warn) return;
    record(std::string(m.m_file) + ":" + std::to_string(m.m_line) + ": " + m.m_string.c_str());
  }
  void test_case_skipped(const doctest::TestCaseData& /*data*/) override {}

 private:
  void record(const std::string& what) {
    const std::lock_guard lock(mutex_);
    failures_.push_back("[" + current_ + "] " + what);
  }

  std::mutex mutex_;
  std::string current_;
  std::vector<std::string> failures_;
};

REGISTER_LISTENER("failure_summary", 1, failure_summary);

}  // namespace
