// A test PKI made with the openssl command: a CA, a server certificate for
// 127.0.0.1, a client certificate, and a CA that signed none of them.
#ifndef DISTCACHE_TESTS_SUPPORT_PKI_HPP
#define DISTCACHE_TESTS_SUPPORT_PKI_HPP

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/processes.hpp"

namespace distcache::test {

/// A directory of certificates: ca.crt/ca.key, server.crt/server.key (SAN
/// IP:127.0.0.1 and DNS:kubernetes.default.svc, signed by the CA),
/// client.crt/client.key (signed by the CA) and other-ca.crt (a CA that
/// signed nothing here). Removed by the destructor.
class test_pki {
 public:
  test_pki() {
    char name[] = "/tmp/distcache-pki-XXXXXX";
    if (::mkdtemp(name) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = name;
    const std::string openssl = find_program("openssl");
    if (openssl.empty()) throw std::runtime_error("openssl is not installed");
    std::ofstream(path("ext.cnf")) << "subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc\n";
    const std::string log = path("openssl.log");
    auto run = [&](std::vector<std::string> args) {
      args.insert(args.begin(), openssl);
      if (run_to_completion(args, log) != 0) {
        throw std::runtime_error("openssl failed; see " + log);
      }
    };
    for (const char* ca : {"ca", "other-ca"}) {
      run({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", path(std::string(ca) + ".key"), "-out", path(std::string(ca) + ".crt"),
           "-subj", "/CN=distcache test " + std::string(ca), "-days", "2"});
    }
    run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
         path("server.key"), "-out", path("server.csr"), "-subj", "/CN=kube-apiserver"});
    run({"x509", "-req", "-in", path("server.csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"),
         "-CAcreateserial", "-out", path("server.crt"), "-days", "2", "-extfile", path("ext.cnf")});
    run({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
         path("client.key"), "-out", path("client.csr"), "-subj", "/CN=distcache-node"});
    run({"x509", "-req", "-in", path("client.csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"),
         "-CAcreateserial", "-out", path("client.crt"), "-days", "2"});
  }
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;
  ~test_pki() {
    for (const char* f :
         {"ca.crt", "ca.key", "ca.srl", "other-ca.crt", "other-ca.key", "server.crt", "server.key",
          "server.csr", "client.crt", "client.key", "client.csr", "ext.cnf", "openssl.log"}) {
      ::unlink(path(f).c_str());
    }
    ::rmdir(dir_.c_str());
  }
  [[nodiscard]] std::string path(const std::string& file) const { return dir_ + "/" + file; }

 private:
  std::string dir_;
};

}  // namespace distcache::test

#endif  // DISTCACHE_TESTS_SUPPORT_PKI_HPP
