/// @file
/// A throw-away PKI for the TLS tests, made with the openssl command line: a CA, a server
/// certificate for 127.0.0.1/localhost, client certificates (common name = the client's name, which
/// etcd with auth enabled takes as the user name) and a second, unrelated CA with a client of its
/// own. Keys are written mode 0600.
#ifndef CNINET_TESTS_TESTING_TEST_PKI_H_
#define CNINET_TESTS_TESTING_TEST_PKI_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cninet::testing {

/// A certificate and its key (PEM files).
struct CertPair {
  std::string cert;
  std::string key;
};

/// The files MakeTestPki wrote.
struct TestPki {
  std::string ca;         ///< The CA certificate etcd and the clients trust.
  CertPair server;        ///< etcd's certificate: SAN IP:127.0.0.1, DNS:localhost.
  std::string other_ca;   ///< An unrelated CA.
  CertPair other_client;  ///< A client certificate signed by other_ca (CN "intruder").
  /// The client certificate of `name` (one of MakeTestPki's `clients`).
  CertPair Client(const std::string& name) const;
  std::string dir;  ///< Where the files are.
};

/// Writes the PKI into `dir` (created if missing), one client certificate per name in `clients`
/// (CN = name). Fails with openssl's output when a command fails.
absl::StatusOr<TestPki> MakeTestPki(const std::string& dir,
                                    const std::vector<std::string>& clients);

}  // namespace cninet::testing

#endif  // CNINET_TESTS_TESTING_TEST_PKI_H_
