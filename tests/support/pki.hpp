// A test PKI made with the openssl command: a CA, a server certificate for
// 127.0.0.1, a client certificate, a CA that signed none of them, and more
// certificates on demand (issue()).
#ifndef DISTCACHE_TESTS_SUPPORT_PKI_HPP
#define DISTCACHE_TESTS_SUPPORT_PKI_HPP

#include <unistd.h>

#include <cstdlib>
#include <distcache/config.hpp>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/processes.hpp"

namespace distcache::test {

/// A directory of certificates: ca.crt/ca.key, server.crt/server.key (SAN
/// IP:127.0.0.1 and DNS:kubernetes.default.svc, signed by the CA),
/// client.crt/client.key (signed by the CA) and other-ca.crt/other-ca.key
/// (a CA that signed nothing here). Removed by the destructor.
class test_pki {
 public:
  test_pki() {
    char name[] = "/tmp/distcache-pki-XXXXXX";
    if (::mkdtemp(name) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = name;
    openssl_ = find_program("openssl");
    if (openssl_.empty()) throw std::runtime_error("openssl is not installed");
    for (const char* ca : {"ca", "other-ca"}) {
      run({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", path(std::string(ca) + ".key"), "-out", path(std::string(ca) + ".crt"),
           "-subj", "/CN=distcache test " + std::string(ca), "-days", "2"});
    }
    issue("server", "IP:127.0.0.1,DNS:kubernetes.default.svc", "ca", 2, "kube-apiserver");
    issue("client", "", "ca", 2, "distcache-node");
  }
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;
  ~test_pki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  [[nodiscard]] std::string path(const std::string& file) const { return dir_ + "/" + file; }

  /// TLS options with `name`.crt and `name`.key, trusting ca.crt.
  [[nodiscard]] distcache::tls_options tls(const std::string& name) const {
    distcache::tls_options t;
    t.enabled = true;
    t.certificate_file = path(name + ".crt");
    t.private_key_file = path(name + ".key");
    t.ca_file = path("ca.crt");
    return t;
  }

  /// Makes `name`.crt and `name`.key: a new P-256 key and a certificate
  /// signed by `ca` ("ca" or "other-ca") with subjectAltName `san` (such as
  /// "IP:127.0.0.1"; empty: none), valid for `days` days from now; a
  /// negative count makes one that has already expired.
  void issue(const std::string& name, const std::string& san, const std::string& ca = "ca",
             int days = 2, const std::string& common_name = "distcache node") {
    run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
         path(name + ".key"), "-out", path(name + ".csr"), "-subj", "/CN=" + common_name});
    std::vector<std::string> args = {"x509",
                                     "-req",
                                     "-in",
                                     path(name + ".csr"),
                                     "-CA",
                                     path(ca + ".crt"),
                                     "-CAkey",
                                     path(ca + ".key"),
                                     "-CAcreateserial",
                                     "-out",
                                     path(name + ".crt"),
                                     "-days",
                                     std::to_string(days)};
    if (!san.empty()) {
      std::ofstream(path(name + ".ext")) << "subjectAltName=" << san << "\n";
      args.insert(args.end(), {"-extfile", path(name + ".ext")});
    }
    run(args);
  }

 private:
  void run(std::vector<std::string> args) const {
    const std::string log = path("openssl.log");
    args.insert(args.begin(), openssl_);
    if (run_to_completion(args, log) != 0) throw std::runtime_error("openssl failed; see " + log);
  }

  std::string dir_;
  std::string openssl_;
};

}  // namespace distcache::test

#endif  // DISTCACHE_TESTS_SUPPORT_PKI_HPP
