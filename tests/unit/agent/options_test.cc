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
  EXPECT_THAT(options.Validate(), IsOk());
  options.max_backoff = std::chrono::milliseconds(10);
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "backoff"));
  options.max_backoff = std::chrono::seconds(5);
  options.list_page_size = 0;
  EXPECT_THAT(options.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "list_page_size"));
}

TEST(EtcdStoreOptionsTest, EndpointsAreCheckedWhenOpening) {
  if (!EtcdStoreAvailable()) {
    EtcdStoreOptions options;
    options.endpoints = {"127.0.0.1:2379"};
    EXPECT_THAT(OpenEtcdStore(options), StatusIs(absl::StatusCode::kUnimplemented, "etcd"));
    return;
  }
  EtcdStoreOptions options;
  options.connect_timeout = {};  // Do not contact anything.
  options.endpoints = {"https://127.0.0.1:2379"};
  EXPECT_THAT(OpenEtcdStore(options), StatusIs(absl::StatusCode::kUnimplemented, "TLS"));
  options.endpoints = {"127.0.0.1:2379", "etcd.example:2379"};
  EXPECT_THAT(OpenEtcdStore(options), StatusIs(absl::StatusCode::kInvalidArgument, "IPv4"));
  options.endpoints = {"http://127.0.0.1:2379/", "127.0.0.2:2379"};
  EXPECT_THAT(OpenEtcdStore(options), IsOk());
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
