// The etcd store against a real etcd (/usr/bin/etcd) started per test on 127.0.0.1 (free ports,
// temporary data directory, killed and removed at the end, also on failure): the Store contract,
// etcdctl interoperability, podCIDR allocation races between two clients, watches surviving an
// etcd restart, and compaction while a watch is disconnected (relist).
#include "cninet/agent/etcd_store.h"

#include <atomic>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cninet/agent/state.h"
#include "store_conformance.h"
#include "tcp_proxy.h"
#include "testing/etcd_server.h"
#include "testing/test_util.h"

namespace cninet::agent::testing {
namespace {

using cninet::testing::CommandResult;
using cninet::testing::Run;
using cninet::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<std::unique_ptr<::cninet::testing::EtcdServer>> StartEtcd(const TempDir& dir) {
  ::cninet::testing::EtcdServerOptions options;
  options.data_dir = dir.Sub("etcd");
  return ::cninet::testing::EtcdServer::Start(options);
}

// A client; with a short request_timeout it does not wait for etcd at open either.
absl::StatusOr<std::unique_ptr<Store>> Connect(
    const std::string& endpoint,
    std::chrono::milliseconds request_timeout = std::chrono::seconds(5)) {
  EtcdStoreOptions options;
  options.endpoints = {endpoint};
  options.request_timeout = request_timeout;
  if (request_timeout < std::chrono::seconds(1)) options.connect_timeout = {};
  options.initial_backoff = std::chrono::milliseconds(100);
  options.max_backoff = std::chrono::milliseconds(1000);
  return OpenEtcdStore(options);
}

class EtcdEnv : public StoreEnv {
 public:
  EtcdEnv() : server_(StartEtcd(dir_)) {}
  absl::StatusOr<std::unique_ptr<Store>> OpenClient() override {
    if (!server_.ok()) return server_.status();
    return Connect((*server_)->url());
  }

 private:
  TempDir dir_;
  absl::StatusOr<std::unique_ptr<::cninet::testing::EtcdServer>> server_;
};

INSTANTIATE_TEST_SUITE_P(Etcd, StoreConformance,
                         ::testing::Values(StoreKind{
                             "Etcd", [] { return std::unique_ptr<StoreEnv>(new EtcdEnv()); }}),
                         StoreKindName);

class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(EtcdStoreAvailable());
    auto server = StartEtcd(dir_);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    auto store = Connect(server_->url());
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }

  CommandResult Etcdctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"etcdctl", "--endpoints=" + server_->url()};
    argv.insert(argv.end(), args.begin(), args.end());
    return cninet::testing::Run(argv, {}, {"ETCDCTL_API=3"});
  }

  TempDir dir_;
  std::unique_ptr<::cninet::testing::EtcdServer> server_;
  std::unique_ptr<Store> store_;
};

TEST_F(EtcdStoreTest, ListensOnLoopbackOnly) {
  CommandResult ss = cninet::testing::Run({"ss", "-Hltnp"});
  ASSERT_TRUE(ss.ok()) << ss.err;
  int lines = 0;
  std::istringstream in(ss.out);
  for (std::string line; std::getline(in, line);) {
    if (line.find("pid=" + std::to_string(server_->pid()) + ",") == std::string::npos) continue;
    lines++;
    EXPECT_THAT(line, HasSubstr("127.0.0.1:")) << "etcd listens beyond loopback: " << line;
  }
  EXPECT_GE(lines, 2);  // Client and peer ports.
}

TEST_F(EtcdStoreTest, OpenFailsWhenNothingAnswers) {
  EtcdStoreOptions options;
  options.endpoints = {"http://127.0.0.1:1"};
  options.connect_timeout = std::chrono::milliseconds(500);
  EXPECT_THAT(OpenEtcdStore(options), StatusIs(absl::StatusCode::kUnavailable, "not reachable"));
  options.endpoints = {};
  EXPECT_THAT(OpenEtcdStore(options), StatusIs(absl::StatusCode::kInvalidArgument, "endpoints"));
}

TEST_F(EtcdStoreTest, EtcdctlAndTypedAccessInteroperate) {
  // An operator sets directRouting/publicIP per node with etcdctl, as pcn-k8s users do.
  CommandResult put = Etcdctl({"put", keys::Node("node-1"),
                               R"({"podCIDRs":["10.244.1.0/24"],"directRouting":true,)"
                               R"("publicIP":"203.0.113.7"})"});
  ASSERT_TRUE(put.ok()) << put.err;
  auto node = GetObject<v1::Node>(*store_, keys::Node("node-1"));
  ASSERT_THAT(node, IsOk());
  EXPECT_EQ(node->value.name(), "node-1");
  EXPECT_TRUE(node->value.direct_routing());
  EXPECT_EQ(node->value.public_ip(), "203.0.113.7");
  EXPECT_EQ(node->value.pod_cidrs(0), "10.244.1.0/24");

  // What the library writes, etcdctl reads as the canonical JSON.
  v1::Endpoints eps;
  eps.set_namespace_("default");
  eps.set_name("web");
  auto* port = eps.add_ports();
  port->set_port_name("http");
  for (int i = 1; i <= 2; ++i) {
    auto* backend = port->add_backends();
    backend->set_ip("10.244.1." + std::to_string(i));
    backend->set_port(8080);
    backend->set_node("node-1");
  }
  ASSERT_THAT(PutObject(*store_, eps), IsOk());
  CommandResult get = Etcdctl({"get", "--print-value-only", keys::Endpoints("default", "web")});
  ASSERT_TRUE(get.ok()) << get.err;
  auto json = EncodeJson(eps);
  ASSERT_THAT(json, IsOk());
  EXPECT_EQ(get.out, *json + "\n");

  // Malformed values written by hand are reported per key; the rest still lists.
  ASSERT_TRUE(Etcdctl({"put", keys::Node("node-2"), R"({"directRouting":"maybe"})"}).ok());
  ASSERT_TRUE(Etcdctl({"put", keys::Node("node-3"), R"({"publicIP":"999.1.1.1"})"}).ok());
  ASSERT_TRUE(Etcdctl({"put", keys::Node("node-4"), R"({"vtepMAC":"0a:58:0a:f4:04:01"})"}).ok());
  auto list = ListObjects<v1::Node>(*store_);
  ASSERT_THAT(list, IsOk());
  std::vector<std::string> names;
  for (const auto& item : list->items) names.push_back(item.value.name());
  EXPECT_THAT(names, ElementsAre("node-1", "node-4"));
  ASSERT_EQ(list->errors.size(), 2u);
  EXPECT_EQ(list->errors[0].key, keys::Node("node-2"));
  EXPECT_EQ(list->errors[1].key, keys::Node("node-3"));
  EXPECT_THAT(list->errors[1].status, StatusIs(absl::StatusCode::kInvalidArgument, "publicIP"));

  // A delete by etcdctl reaches a typed watch with the identity from the key.
  std::mutex mu;
  std::condition_variable cv;
  std::vector<ObjectEvent<v1::Node>> deletes;
  auto watch = WatchObjects<v1::Node>(*store_, 0, [&](const ObjectUpdate<v1::Node>& update) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& event : update.events) {
      if (event.type == EventType::kDelete) deletes.push_back(event);
    }
    cv.notify_all();
  });
  ASSERT_THAT(watch, IsOk());
  ASSERT_TRUE(Etcdctl({"del", keys::Node("node-1")}).ok());
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return !deletes.empty(); }));
  EXPECT_EQ(deletes[0].object.value.name(), "node-1");
}

TEST_F(EtcdStoreTest, PodCIDRAllocationRaceBetweenTwoClientsGivesDistinctSubnets) {
  auto other = Connect(server_->url());
  ASSERT_THAT(other, IsOk());
  Store* clients[2] = {store_.get(), other->get()};
  // 12 nodes (6 per client, concurrently) allocate from 16 candidate /24s, first writer wins.
  constexpr int kNodes = 12;
  std::vector<std::string> got(kNodes);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int n = 0; n < kNodes; ++n) {
    threads.emplace_back([&, n] {
      for (int c = 0; c < 16; ++c) {
        v1::PodCIDRAllocation alloc;
        alloc.set_cidr("10.244." + std::to_string(c) + ".0/24");
        alloc.set_node("node-" + std::to_string(n));
        auto r = CreateObject(*clients[n % 2], alloc);
        if (r.ok()) {
          got[n] = alloc.cidr();
          return;
        }
        if (!absl::IsAlreadyExists(r.status())) {
          errors++;
          return;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  std::set<std::string> distinct(got.begin(), got.end());
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kNodes));
  EXPECT_EQ(distinct.count(""), 0u);
  auto list = ListObjects<v1::PodCIDRAllocation>(*store_);
  ASSERT_THAT(list, IsOk());
  ASSERT_EQ(list->items.size(), static_cast<size_t>(kNodes));
  for (const auto& item : list->items) {
    int n = std::stoi(item.value.node().substr(5));
    EXPECT_EQ(got[n], item.value.cidr());
  }
}

TEST_F(EtcdStoreTest, WatchResumesAfterEtcdRestartWithoutLosingOrRepeatingEvents) {
  const std::string prefix = "/cninet-test/restart/";
  WatchRecorder recorder;
  auto watch = store_->Watch(prefix, 0, recorder.Callback());
  ASSERT_THAT(watch, IsOk());
  ASSERT_THAT(store_->Put(prefix + "k1", "1"), IsOk());
  ASSERT_THAT(store_->Put(prefix + "k2", "2"), IsOk());
  ASSERT_TRUE(recorder.WaitFor([&] { return recorder.events_locked().size() == 2; }));
  EXPECT_THAT((*watch)->health(), IsOk());

  ASSERT_THAT(server_->Stop(/*graceful=*/false), IsOk());  // A crash.
  // Calls fail with Unavailable while etcd is down ...
  auto impatient = Connect(server_->url(), std::chrono::milliseconds(500));
  ASSERT_THAT(impatient, IsOk());
  EXPECT_THAT((*impatient)->Put(prefix + "lost", "x"),
              StatusIs(absl::StatusCode::kUnavailable, ""));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*watch)->health().ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_THAT((*watch)->health(), StatusIs(absl::StatusCode::kUnavailable, ""));

  // ... and a patient one issued during the outage completes once etcd is back.
  absl::StatusOr<int64_t> during = absl::UnknownError("not run");
  std::thread writer([&] { during = store_->Put(prefix + "k3", "3"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_THAT(server_->Restart(), IsOk());
  writer.join();
  ASSERT_THAT(during, IsOk());
  ASSERT_THAT(store_->Put(prefix + "k4", "4"), IsOk());

  ASSERT_TRUE(recorder.WaitFor([&] { return recorder.events_locked().size() >= 4; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // Room for a duplicate to show.
  std::vector<std::string> keys;
  int64_t last = 0;
  for (const Event& event : recorder.events()) {
    keys.push_back(event.kv.key.substr(prefix.size()));
    EXPECT_GT(event.kv.mod_revision, last);
    last = event.kv.mod_revision;
  }
  EXPECT_THAT(keys, ElementsAre("k1", "k2", "k3", "k4"));
  EXPECT_EQ(recorder.resets(), 1);  // Only the initial list: no compaction, no relist.
  EXPECT_THAT((*watch)->health(), IsOk());
}

TEST_F(EtcdStoreTest, CompactionWhileAWatchIsDisconnectedRelists) {
  TcpProxy proxy(std::stoi(server_->endpoint().substr(server_->endpoint().rfind(':') + 1)));
  ASSERT_NE(proxy.port(), 0);
  auto watched = Connect("http://127.0.0.1:" + std::to_string(proxy.port()));
  ASSERT_THAT(watched, IsOk());
  const std::string prefix = "/cninet-test/compact/";
  ASSERT_THAT(store_->Put(prefix + "a", "1"), IsOk());
  ASSERT_THAT(store_->Put(prefix + "b", "1"), IsOk());
  WatchRecorder recorder;
  auto watch = (*watched)->Watch(prefix, 0, recorder.Callback());
  ASSERT_THAT(watch, IsOk());
  ASSERT_TRUE(recorder.WaitForState({{prefix + "a", "1"}, {prefix + "b", "1"}}));

  proxy.SetUp(false);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*watch)->health().ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE((*watch)->health().ok()) << "the watch did not notice the cut";

  // While it is away: changes, then the history it would resume from is compacted.
  ASSERT_THAT(store_->Put(prefix + "c", "1"), IsOk());
  ASSERT_THAT(store_->Delete(prefix + "a"), IsOk());
  auto rev = store_->Put(prefix + "b", "2");
  ASSERT_THAT(rev, IsOk());
  ASSERT_THAT(store_->Compact(*rev), IsOk());

  proxy.SetUp(true);
  ASSERT_TRUE(recorder.WaitFor([&] { return recorder.resets_locked() == 2; }))
      << "no relist after compaction";
  EXPECT_EQ(recorder.state(), Snapshot(*store_, prefix));
  EXPECT_EQ(recorder.state(),
            (std::map<std::string, std::string>{{prefix + "b", "2"}, {prefix + "c", "1"}}));
  // And it keeps watching from there.
  ASSERT_THAT(store_->Put(prefix + "d", "1"), IsOk());
  EXPECT_TRUE(recorder.WaitForState(Snapshot(*store_, prefix)));
  EXPECT_THAT((*watch)->health(), IsOk());
}

TEST_F(EtcdStoreTest, HeartbeatLeaseExpiresWhenTheAgentStopsRefreshing) {
  auto keeper = LeaseKeeper::Start(*store_, std::chrono::seconds(3));
  ASSERT_THAT(keeper, IsOk());
  v1::NodeHeartbeat heartbeat;
  heartbeat.set_node("node-1");
  heartbeat.set_agent_version("test");
  ASSERT_THAT(PutObject(*store_, heartbeat, (*keeper)->id()), IsOk());
  CommandResult ttl = Etcdctl({"lease", "timetolive", absl::StrCat(absl::Hex((*keeper)->id()))});
  ASSERT_TRUE(ttl.ok()) << ttl.err;
  EXPECT_THAT(ttl.out, HasSubstr("granted with TTL(3s)"));
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_THAT(GetObject<v1::NodeHeartbeat>(*store_, keys::Heartbeat("node-1")), IsOk());
  (*keeper)->Abandon();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  absl::Status status;
  while (std::chrono::steady_clock::now() < deadline) {
    status = store_->Get(keys::Heartbeat("node-1")).status();
    if (absl::IsNotFound(status)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound, ""));
}

}  // namespace
}  // namespace cninet::agent::testing
