// The etcd TLS flags cninet-agent and cninetctl share (named like etcdctl's --cacert/--cert/--key).
#ifndef CNINET_TOOLS_COMMON_ETCD_FLAGS_H_
#define CNINET_TOOLS_COMMON_ETCD_FLAGS_H_

#include "CLI/CLI.hpp"
#include "cninet/agent/etcd_store.h"

namespace cninet::agent_tool {

// --etcd-cacert, --etcd-cert, --etcd-key, --etcd-server-name on `cmd`, filling `tls`.
inline void AddEtcdTlsFlags(CLI::App* cmd, agent::EtcdTlsOptions* tls) {
  cmd->add_option("--etcd-cacert", tls->ca_file,
                  "CA bundle that signed etcd's server certificate (PEM) [the system's roots]");
  auto* cert = cmd->add_option("--etcd-cert", tls->cert_file,
                               "client certificate presented to etcd (PEM; mutual TLS)");
  auto* key = cmd->add_option("--etcd-key", tls->key_file,
                              "the client certificate's key (PEM; owned by root, mode 0600)");
  cert->needs(key);
  key->needs(cert);
  cmd->add_option("--etcd-server-name", tls->server_name,
                  "name checked in etcd's certificate [the endpoint's host]");
}

}  // namespace cninet::agent_tool

#endif  // CNINET_TOOLS_COMMON_ETCD_FLAGS_H_
