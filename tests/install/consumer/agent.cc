// Consumer of COMPONENTS agent: writes a Node (a generated protobuf message) into an embedded
// store in a temporary directory and reads it back; when the build has the etcd store, creates
// an etcd client without connecting (so a static link needs gRPC).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "cninet/agent/embedded_store.h"
#include "cninet/agent/etcd_store.h"
#include "cninet/agent/state.h"

namespace agent = cninet::agent;

int main() {
  char tmpl[] = "/tmp/cninet-consumer-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  std::string dir = tmpl;
  int rc = 1;
  {
    agent::EmbeddedStoreOptions options;
    options.dir = dir + "/store";
    auto store = agent::OpenEmbeddedStore(options);
    cninet::v1::Node node;
    node.set_name("node-1");
    node.add_pod_cidrs("10.244.1.0/24");
    auto value = agent::EncodeObject(agent::ObjectKind::kNode, node);
    if (store.ok() && value.ok() && (*store)->Put(agent::keys::Node("node-1"), *value).ok()) {
      auto got = (*store)->Get(agent::keys::Node("node-1"));
      cninet::v1::Node back;
      if (got.ok() &&
          agent::DecodeObject(agent::ObjectKind::kNode, got->key, got->value, &back).ok() &&
          back.pod_cidrs(0) == "10.244.1.0/24") {
        std::printf("agent: %s\n", got->value.c_str());
        rc = 0;
      }
    }
  }
  std::filesystem::remove_all(dir);
  if (rc == 0 && agent::EtcdStoreAvailable()) {
    agent::EtcdStoreOptions etcd;
    etcd.endpoints = {"http://127.0.0.1:2379"};
    etcd.connect_timeout = std::chrono::milliseconds(0);  // No connection is made.
    auto client = agent::OpenEtcdStore(etcd);
    if (!client.ok()) {
      std::fprintf(stderr, "etcd client: %s\n", client.status().ToString().c_str());
      rc = 1;
    } else {
      std::printf("agent: etcd client created (not connected)\n");
    }
  }
  return rc;
}
