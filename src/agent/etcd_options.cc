#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cninet/agent/etcd_store.h"
#include "cninet/base/strings.h"

namespace cninet::agent {
namespace {

enum class Scheme { kNone, kHttp, kHttps };

Scheme SchemeOf(const std::string& endpoint) {
  if (endpoint.rfind("https://", 0) == 0) return Scheme::kHttps;
  if (endpoint.rfind("http://", 0) == 0) return Scheme::kHttp;
  return Scheme::kNone;
}

}  // namespace

absl::Status CheckPrivateKeyFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(StrCat("private key ", path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(StrCat("private key ", path, ": not a regular file"));
  }
  const uid_t me = geteuid();
  if (st.st_uid != 0 && st.st_uid != me) {
    return absl::FailedPreconditionError(
        StrCat("private key ", path, " is owned by uid ", st.st_uid, ", not by root",
               me != 0 ? StrCat(" or uid ", me) : std::string(), ": chown root ", path));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return absl::FailedPreconditionError(StrCat("private key ", path,
                                                " is accessible by others (mode ", mode,
                                                "): refusing it, as ssh does; chmod 600 ", path));
  }
  return absl::OkStatus();
}

bool EtcdStoreOptions::UsesTls() const {
  return !endpoints.empty() && SchemeOf(endpoints[0]) != Scheme::kHttp;
}

absl::Status EtcdStoreOptions::Validate() const {
  if (endpoints.empty()) return absl::InvalidArgumentError("etcd store: no endpoints");
  for (const std::string& endpoint : endpoints) {
    if (endpoint.empty()) return absl::InvalidArgumentError("etcd store: empty endpoint");
    if (SchemeOf(endpoint) != SchemeOf(endpoints[0])) {
      return absl::InvalidArgumentError(
          StrCat("etcd store: endpoints mix schemes (", endpoints[0], ", ", endpoint, ")"));
    }
  }
  switch (SchemeOf(endpoints[0])) {
    case Scheme::kHttp:
      if (tls.any()) {
        return absl::InvalidArgumentError(
            StrCat("etcd store: TLS options given for the plain-text endpoint ", endpoints[0],
                   " (use https://)"));
      }
      break;
    case Scheme::kNone:
      if (!tls.any()) {
        return absl::InvalidArgumentError(
            StrCat("etcd store: endpoint ", endpoints[0],
                   " has no scheme and no TLS options; write https://", endpoints[0],
                   " with the CA and client certificate, or http://", endpoints[0],
                   " to speak plain text"));
      }
      break;
    case Scheme::kHttps:
      break;
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "etcd store: a client certificate needs its key and a key its certificate");
  }
  if (request_timeout.count() <= 0) {
    return absl::InvalidArgumentError("etcd store: request_timeout must be positive");
  }
  if (connect_timeout.count() < 0) {
    return absl::InvalidArgumentError("etcd store: connect_timeout must not be negative");
  }
  if (initial_backoff.count() <= 0 || max_backoff < initial_backoff) {
    return absl::InvalidArgumentError("etcd store: need 0 < initial_backoff <= max_backoff");
  }
  if (list_page_size <= 0) {
    return absl::InvalidArgumentError("etcd store: list_page_size must be positive");
  }
  return absl::OkStatus();
}

}  // namespace cninet::agent
