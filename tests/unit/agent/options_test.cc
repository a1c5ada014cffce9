// Option validation of the stores and the etcd launcher (no etcd needed).
#include "cninet/agent/etcd_store.h"
#include "store_test_support.h"
#include "testing/etcd_server.h"

namespace cninet::agent::testing {
namespace {

TEST(EtcdStoreOptionsTest, Validate) {
  EtcdStoreOptions options;
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "no endpoints"));
  options.endpoints = {"127.0.0.1:2379"};
  // No scheme and no TLS options: plain text is not assumed.
  EXPECT_THAT(options.Validate(),
              StatusIs(absl::StatusCode::kInvalidArgument, "http://127.0.0.1:2379 to speak plain"));
  options.tls.ca_file = "/etc/cninet/etcd-ca.pem";  // TLS (files are read when opening)
  EXPECT_THAT(options.Validate(), IsOk());
  options.tls.cert_file = "/etc/cninet/node.pem";
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "its key"));
  options.tls = {};
  options.endpoints = {"https://127.0.0.1:2379", "http://127.0.0.2:2379"};
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "mix schemes"));
  options.endpoints = {"http://127.0.0.1:2379"};
  EXPECT_THAT(options.Validate(), IsOk());
  options.tls.ca_file = "/etc/cninet/etcd-ca.pem";
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "plain-text"));
  options.tls = {};
  options.endpoints = {"https://127.0.0.1:2379"};  // the system's roots
  EXPECT_THAT(options.Validate(), IsOk());
  options.endpoints = {"http://127.0.0.1:2379"};
  options.max_backoff = std::chrono::milliseconds(10);
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "backoff"));
  options.max_backoff = std::chrono::seconds(5);
  options.list_page_size = 0;
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "list_page_size"));
}

TEST(EtcdStoreOptionsTest, EndpointsAreCheckedWhenOpening) {
  if (!EtcdStoreAvailable()) {
    EtcdStoreOptions options;
    options.endpoints = {"http://127.0.0.1:2379"};
    EXPECT_THAT(OpenEtcdStore(options), StatusIs(absl::StatusCode::kUnimplemented, "etcd"));
    return;
  }
  EtcdStoreOptions options;
  options.connect_timeout = {};                    // Do not contact anything.
  options.endpoints = {"https://127.0.0.1:2379"};  // TLS with the system's roots
  EXPECT_THAT(OpenEtcdStore(options), IsOk());
  options.endpoints = {"http://127.0.0.1:2379", "http://etcd.example:2379"};
  EXPECT_THAT(OpenEtcdStore(options), StatusIs(absl::StatusCode::kInvalidArgument, "IPv4"));
  options.endpoints = {"http://127.0.0.1:2379/", "http://127.0.0.2:2379"};
  EXPECT_THAT(OpenEtcdStore(options), IsOk());
  // A missing CA file is named.
  options.endpoints = {"https://127.0.0.1:2379"};
  options.tls.ca_file = "/nonexistent/cninet-ca.pem";
  EXPECT_THAT(OpenEtcdStore(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, "/nonexistent/cninet-ca.pem"));
}

TEST(EtcdServerOptionsTest, Validate) {
  ::cninet::testing::EtcdServerOptions options;
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "data_dir"));
  options.data_dir = "/tmp/x";
  EXPECT_THAT(options.Validate(), IsOk());
  options.client_port = 70000;
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "ports"));
  options.client_port = options.peer_port = 2380;
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "differ"));
  options.peer_port = 0;
  options.binary = "/nonexistent/etcd";
  EXPECT_THAT(::cninet::testing::EtcdServer::Start(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, "etcd-server"));
}

}  // namespace
}  // namespace cninet::agent::testing
