// The Store contract, run against every implementation: the unit suite instantiates it for the
// embedded store, the e2e suite for a real etcd started on 127.0.0.1.
#include "store_conformance.h"

#include <atomic>
#include <set>
#include <thread>

#include "cninet/agent/state.h"
#include "testing/test_util.h"

namespace cninet::agent::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

}  // namespace

void StoreConformance::SetUp() {
  env_ = GetParam().make_env();
  ASSERT_NE(env_, nullptr);
  auto store = env_->OpenClient();
  ASSERT_THAT(store, IsOk());
  store_ = *std::move(store);
  prefix_ = "/cninet-test/" + cninet::testing::UniqueName("t") + "/";
}

void StoreConformance::TearDown() {
  store_.reset();
  env_.reset();
}

TEST_P(StoreConformance, PutGetListCarryRevisions) {
  auto r1 = store_->Put(Key("a"), "1");
  ASSERT_THAT(r1, IsOk());
  auto r2 = store_->Put(Key("b"), "2");
  ASSERT_THAT(r2, IsOk());
  EXPECT_GT(*r2, *r1);

  auto a = store_->Get(Key("a"));
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->value, "1");
  EXPECT_EQ(a->create_revision, *r1);
  EXPECT_EQ(a->mod_revision, *r1);
  EXPECT_EQ(a->version, 1);

  auto r3 = store_->Put(Key("a"), "1b");
  ASSERT_THAT(r3, IsOk());
  EXPECT_GT(*r3, *r2);
  a = store_->Get(Key("a"));
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->value, "1b");
  EXPECT_EQ(a->create_revision, *r1);
  EXPECT_EQ(a->mod_revision, *r3);
  EXPECT_EQ(a->version, 2);

  // A sibling that shares the prefix text but not the "/" is not listed.
  ASSERT_THAT(store_->Put(prefix_.substr(0, prefix_.size() - 1) + "-sibling", "x"), IsOk());
  auto list = store_->List(prefix_);
  ASSERT_THAT(list, IsOk());
  ASSERT_THAT(list->kvs, SizeIs(2));
  EXPECT_EQ(list->kvs[0].key, Key("a"));
  EXPECT_EQ(list->kvs[1].key, Key("b"));
  EXPECT_GE(list->revision, *r3);

  EXPECT_THAT(store_->Get(Key("missing")), StatusIs(absl::StatusCode::kNotFound, "missing"));
  auto rev = store_->Revision();
  ASSERT_THAT(rev, IsOk());
  EXPECT_GE(*rev, *r3);
  EXPECT_THAT(store_->Put("", "x"), StatusIs(absl::StatusCode::kInvalidArgument, "key"));
}

TEST_P(StoreConformance, ListReadsManyKeysConsistently) {
  // More keys than one etcd page (list_page_size defaults to 2000).
  constexpr int kKeys = 2500;
  std::vector<Op> ops;
  for (int i = 0; i < kKeys; ++i) {
    char name[16];
    snprintf(name, sizeof(name), "k%05d", i);
    ops.push_back(Op{Op::Kind::kPut, Key(name), std::string(100, 'v'), 0});
    if (ops.size() == 100 || i == kKeys - 1) {
      ASSERT_THAT(store_->Apply(ops), IsOk());
      ops.clear();
    }
  }
  auto list = store_->List(prefix_);
  ASSERT_THAT(list, IsOk());
  ASSERT_THAT(list->kvs, SizeIs(kKeys));
  for (int i = 1; i < kKeys; ++i) ASSERT_LT(list->kvs[i - 1].key, list->kvs[i].key);
}

TEST_P(StoreConformance, CreateIsFirstWriterWins) {
  ASSERT_THAT(store_->Create(Key("cidr"), "node-a"), IsOk());
  EXPECT_THAT(store_->Create(Key("cidr"), "node-b"),
              StatusIs(absl::StatusCode::kAlreadyExists, "already exists"));
  auto kv = store_->Get(Key("cidr"));
  ASSERT_THAT(kv, IsOk());
  EXPECT_EQ(kv->value, "node-a");
  ASSERT_THAT(store_->Delete(Key("cidr")), IsOk());
  EXPECT_THAT(store_->Create(Key("cidr"), "node-b"), IsOk());
}

TEST_P(StoreConformance, ConcurrentCreatesFromTwoClientsHaveExactlyOneWinner) {
  auto other = env_->OpenClient();
  ASSERT_THAT(other, IsOk());
  Store* clients[2] = {store_.get(), other->get()};
  constexpr int kThreads = 6;
  constexpr int kKeys = 25;
  std::vector<std::vector<int>> won(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store* store = clients[t % 2];
      for (int k = 0; k < kKeys; ++k) {
        auto r = store->Create(Key("race/" + std::to_string(k)), "writer-" + std::to_string(t));
        if (r.ok()) {
          won[t].push_back(k);
        } else if (!absl::IsAlreadyExists(r.status())) {
          errors++;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  std::map<int, int> winner;
  for (int t = 0; t < kThreads; ++t) {
    for (int k : won[t]) {
      EXPECT_EQ(winner.count(k), 0u) << "key " << k << " won twice";
      winner[k] = t;
    }
  }
  ASSERT_EQ(winner.size(), static_cast<size_t>(kKeys));
  for (const auto& [k, t] : winner) {
    auto kv = store_->Get(Key("race/" + std::to_string(k)));
    ASSERT_THAT(kv, IsOk());
    EXPECT_EQ(kv->value, "writer-" + std::to_string(t));
  }
}

TEST_P(StoreConformance, UpdateIsCompareAndSwap) {
  auto r1 = store_->Put(Key("k"), "v1");
  ASSERT_THAT(r1, IsOk());
  auto r2 = store_->Update(Key("k"), "v2", *r1);
  ASSERT_THAT(r2, IsOk());
  EXPECT_THAT(store_->Update(Key("k"), "v3", *r1),
              StatusIs(absl::StatusCode::kAborted, "mod_revision"));
  auto kv = store_->Get(Key("k"));
  ASSERT_THAT(kv, IsOk());
  EXPECT_EQ(kv->value, "v2");
  // Expected revision 0 means "absent": creates a missing key, fails on an existing one.
  EXPECT_THAT(store_->Update(Key("fresh"), "x", 0), IsOk());
  EXPECT_THAT(store_->Update(Key("fresh"), "y", 0), StatusIs(absl::StatusCode::kAborted, ""));
}

TEST_P(StoreConformance, ConcurrentReadModifyWriteLosesNoIncrement) {
  auto other = env_->OpenClient();
  ASSERT_THAT(other, IsOk());
  Store* clients[2] = {store_.get(), other->get()};
  ASSERT_THAT(store_->Put(Key("counter"), "0"), IsOk());
  constexpr int kThreads = 4;
  constexpr int kIncrements = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store* store = clients[t % 2];
      for (int i = 0; i < kIncrements; ++i) {
        while (true) {
          auto kv = store->Get(Key("counter"));
          if (!kv.ok()) {
            failures++;
            return;
          }
          int value = std::stoi(kv->value);
          auto r = store->Update(Key("counter"), std::to_string(value + 1), kv->mod_revision);
          if (r.ok()) break;
          if (!absl::IsAborted(r.status())) {
            failures++;
            return;
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  auto kv = store_->Get(Key("counter"));
  ASSERT_THAT(kv, IsOk());
  EXPECT_EQ(kv->value, std::to_string(kThreads * kIncrements));
}

TEST_P(StoreConformance, DeleteIsIdempotentAndDeleteIfChecksRevision) {
  auto r = store_->Put(Key("k"), "v");
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(store_->DeleteIf(Key("k"), *r + 100), StatusIs(absl::StatusCode::kAborted, ""));
  EXPECT_THAT(store_->Get(Key("k")), IsOk());
  EXPECT_THAT(store_->DeleteIf(Key("k"), *r), IsOk());
  EXPECT_THAT(store_->Get(Key("k")), StatusIs(absl::StatusCode::kNotFound, ""));

  ASSERT_THAT(store_->Put(Key("j"), "v"), IsOk());
  auto deleted = store_->Delete(Key("j"));
  ASSERT_THAT(deleted, IsOk());
  EXPECT_TRUE(*deleted);
  deleted = store_->Delete(Key("j"));
  ASSERT_THAT(deleted, IsOk());
  EXPECT_FALSE(*deleted);
}

TEST_P(StoreConformance, ApplyWritesOneRevisionAtomically) {
  ASSERT_THAT(store_->Put(Key("c"), "old"), IsOk());
  WatchRecorder recorder;
  auto watch = store_->Watch(prefix_, 0, recorder.Callback());
  ASSERT_THAT(watch, IsOk());
  ASSERT_TRUE(recorder.WaitFor([&] { return recorder.resets_locked() == 1; }));

  std::vector<Op> ops = {{Op::Kind::kPut, Key("a"), "1", 0},
                         {Op::Kind::kPut, Key("b"), "2", 0},
                         {Op::Kind::kDelete, Key("c"), "", 0}};
  auto rev = store_->Apply(ops);
  ASSERT_THAT(rev, IsOk());
  auto a = store_->Get(Key("a"));
  auto b = store_->Get(Key("b"));
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(a->mod_revision, *rev);
  EXPECT_EQ(b->mod_revision, *rev);
  EXPECT_THAT(store_->Get(Key("c")), StatusIs(absl::StatusCode::kNotFound, ""));

  ASSERT_TRUE(recorder.WaitFor([&] { return recorder.events_locked().size() == 3; }));
  for (const Event& event : recorder.events()) EXPECT_EQ(event.kv.mod_revision, *rev);
  EXPECT_EQ(recorder.state(),
            (std::map<std::string, std::string>{{Key("a"), "1"}, {Key("b"), "2"}}));

  std::vector<Op> dup = {{Op::Kind::kPut, Key("x"), "1", 0}, {Op::Kind::kPut, Key("x"), "2", 0}};
  EXPECT_THAT(store_->Apply(dup), StatusIs(absl::StatusCode::kInvalidArgument, "twice"));
  EXPECT_THAT(store_->Get(Key("x")), StatusIs(absl::StatusCode::kNotFound, ""));
}

TEST_P(StoreConformance, WatchFromZeroStartsWithTheCurrentState) {
  ASSERT_THAT(store_->Put(Key("a"), "1"), IsOk());
  ASSERT_THAT(store_->Put(Key("b"), "2"), IsOk());
  ASSERT_THAT(store_->Put("/elsewhere/z", "x"), IsOk());
  WatchRecorder recorder;
  auto watch = store_->Watch(prefix_, 0, recorder.Callback());
  ASSERT_THAT(watch, IsOk());
  ASSERT_TRUE(recorder.WaitFor([&] { return recorder.resets_locked() == 1; }));
  auto first = recorder.updates().front();
  EXPECT_TRUE(first.reset);
  ASSERT_THAT(first.events, SizeIs(2));
  EXPECT_EQ(first.events[0].kv.key, Key("a"));
  EXPECT_EQ(first.events[1].kv.key, Key("b"));

  ASSERT_THAT(store_->Put(Key("c"), "3"), IsOk());
  ASSERT_THAT(store_->Delete(Key("a")), IsOk());
  ASSERT_THAT(store_->Put("/elsewhere/y", "x"), IsOk());
  EXPECT_TRUE(recorder.WaitForState(Snapshot(*store_, prefix_)));
  auto events = recorder.events();
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_EQ(events[0].type, EventType::kPut);
  EXPECT_EQ(events[0].kv.key, Key("c"));
  EXPECT_EQ(events[1].type, EventType::kDelete);
  EXPECT_EQ(events[1].kv.key, Key("a"));
  EXPECT_GT(events[1].kv.mod_revision, events[0].kv.mod_revision);
  EXPECT_THAT((*watch)->health(), IsOk());
}

TEST_P(StoreConformance, WatchFromARevisionReplaysHistoryInOrder) {
  auto r1 = store_->Put(Key("a"), "1");
  ASSERT_THAT(r1, IsOk());
  ASSERT_THAT(store_->Put(Key("b"), "2"), IsOk());
  ASSERT_THAT(store_->Delete(Key("a")), IsOk());
  WatchRecorder recorder;
  auto watch = store_->Watch(prefix_, *r1, recorder.Callback());
  ASSERT_THAT(watch, IsOk());
  ASSERT_TRUE(recorder.WaitFor([&] { return recorder.events_locked().size() == 3; }));
  auto events = recorder.events();
  EXPECT_EQ(recorder.resets(), 0);
  EXPECT_EQ(events[0].type, EventType::kPut);
  EXPECT_EQ(events[0].kv.key, Key("a"));
  EXPECT_EQ(events[0].kv.mod_revision, *r1);
  EXPECT_EQ(events[1].kv.key, Key("b"));
  EXPECT_EQ(events[2].type, EventType::kDelete);
  EXPECT_EQ(events[2].kv.key, Key("a"));
}

TEST_P(StoreConformance, WatchFromACompactedRevisionGetsAReset) {
  auto r1 = store_->Put(Key("a"), "1");
  ASSERT_THAT(r1, IsOk());
  ASSERT_THAT(store_->Put(Key("a"), "2"), IsOk());
  auto r3 = store_->Put(Key("b"), "3");
  ASSERT_THAT(r3, IsOk());
  ASSERT_THAT(store_->Compact(*r3), IsOk());
  ASSERT_THAT(store_->Compact(*r3), IsOk());  // Idempotent.

  WatchRecorder old_watch;
  auto w1 = store_->Watch(prefix_, *r1, old_watch.Callback());
  ASSERT_THAT(w1, IsOk());
  ASSERT_TRUE(old_watch.WaitFor([&] { return old_watch.resets_locked() == 1; }));
  EXPECT_EQ(old_watch.state(),
            (std::map<std::string, std::string>{{Key("a"), "2"}, {Key("b"), "3"}}));

  WatchRecorder new_watch;
  auto w2 = store_->Watch(prefix_, *r3, new_watch.Callback());
  ASSERT_THAT(w2, IsOk());
  ASSERT_TRUE(new_watch.WaitFor([&] { return new_watch.events_locked().size() == 1; }));
  EXPECT_EQ(new_watch.resets(), 0);
  EXPECT_EQ(new_watch.events()[0].kv.key, Key("b"));
}

TEST_P(StoreConformance, RevokedLeaseDeletesItsKeys) {
  auto lease = store_->GrantLease(std::chrono::seconds(60));
  ASSERT_THAT(lease, IsOk());
  ASSERT_THAT(store_->Put(Key("hb"), "alive", *lease), IsOk());
  auto kv = store_->Get(Key("hb"));
  ASSERT_THAT(kv, IsOk());
  EXPECT_EQ(kv->lease, *lease);
  auto ttl = store_->KeepAlive(*lease);
  ASSERT_THAT(ttl, IsOk());
  EXPECT_EQ(ttl->count(), 60);

  ASSERT_THAT(store_->RevokeLease(*lease), IsOk());
  EXPECT_THAT(store_->Get(Key("hb")), StatusIs(absl::StatusCode::kNotFound, ""));
  EXPECT_THAT(store_->KeepAlive(*lease), StatusIs(absl::StatusCode::kNotFound, ""));
  EXPECT_THAT(store_->RevokeLease(*lease), IsOk());
  EXPECT_THAT(store_->Put(Key("hb"), "x", *lease), StatusIs(absl::StatusCode::kNotFound, "lease"));
}

TEST_P(StoreConformance, LeaseExpiresWithoutKeepAlive) {
  auto lease = store_->GrantLease(std::chrono::seconds(2));
  ASSERT_THAT(lease, IsOk());
  ASSERT_THAT(store_->Put(Key("hb"), "alive", *lease), IsOk());
  ASSERT_THAT(store_->Put(Key("plain"), "stays"), IsOk());
  WatchRecorder recorder;
  auto watch = store_->Watch(prefix_, 0, recorder.Callback());
  ASSERT_THAT(watch, IsOk());
  EXPECT_TRUE(recorder.WaitForState({{Key("plain"), "stays"}}, std::chrono::seconds(20)));
  EXPECT_THAT(store_->Get(Key("hb")), StatusIs(absl::StatusCode::kNotFound, ""));
  EXPECT_THAT(store_->KeepAlive(*lease), StatusIs(absl::StatusCode::kNotFound, ""));
}

TEST_P(StoreConformance, LeaseKeeperKeepsHeartbeatUntilAbandoned) {
  auto keeper = LeaseKeeper::Start(*store_, std::chrono::seconds(2));
  ASSERT_THAT(keeper, IsOk());
  ASSERT_THAT(store_->Put(Key("hb"), "alive", (*keeper)->id()), IsOk());
  // Three TTLs later the key is still there: the keeper refreshed it.
  std::this_thread::sleep_for(std::chrono::seconds(5));
  EXPECT_THAT(store_->Get(Key("hb")), IsOk());
  EXPECT_FALSE((*keeper)->lost());

  WatchRecorder recorder;
  auto watch = store_->Watch(prefix_, 0, recorder.Callback());
  ASSERT_THAT(watch, IsOk());
  ASSERT_TRUE(recorder.WaitForState({{Key("hb"), "alive"}}));
  (*keeper)->Abandon();  // As if the agent died: the heartbeat expires.
  EXPECT_TRUE(recorder.WaitForState({}, std::chrono::seconds(20)));

  // Destroying a keeper revokes its lease at once.
  auto second = LeaseKeeper::Start(*store_, std::chrono::seconds(60));
  ASSERT_THAT(second, IsOk());
  ASSERT_THAT(store_->Put(Key("hb2"), "alive", (*second)->id()), IsOk());
  second->reset();
  EXPECT_THAT(store_->Get(Key("hb2")), StatusIs(absl::StatusCode::kNotFound, ""));
}

TEST_P(StoreConformance, TypedObjectsRoundTripAsCanonicalJson) {
  v1::Node node;
  node.set_name("node-1");
  node.add_pod_cidrs("10.244.1.0/24");
  node.set_direct_routing(true);
  node.set_public_ip("192.0.2.10");
  node.set_vtep_mac("0a:58:0a:f4:01:01");
  auto* addr = node.add_addresses();
  addr->set_type(v1::NodeAddress::INTERNAL_IP);
  addr->set_address("10.0.0.1");
  ASSERT_THAT(PutObject(*store_, node), IsOk());

  auto raw = store_->Get(keys::Node("node-1"));
  ASSERT_THAT(raw, IsOk());
  EXPECT_THAT(raw->value, ::testing::HasSubstr("\"podCIDRs\":[\"10.244.1.0/24\"]"));
  EXPECT_THAT(raw->value, ::testing::HasSubstr("\"directRouting\":true"));
  EXPECT_THAT(raw->value, ::testing::HasSubstr("\"publicIP\":\"192.0.2.10\""));

  auto got = GetObject<v1::Node>(*store_, keys::Node("node-1"));
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->value.SerializeAsString(), node.SerializeAsString());
  EXPECT_EQ(got->mod_revision, raw->mod_revision);

  v1::Node bad;
  bad.set_name("node-2");
  bad.add_pod_cidrs("10.244.2.1/24");  // Host bits set.
  EXPECT_THAT(PutObject(*store_, bad), StatusIs(absl::StatusCode::kInvalidArgument, "host bits"));
  EXPECT_THAT(store_->Get(keys::Node("node-2")), StatusIs(absl::StatusCode::kNotFound, ""));

  v1::PodCIDRAllocation alloc;
  alloc.set_cidr("10.244.1.0/24");
  alloc.set_node("node-1");
  EXPECT_THAT(CreateObject(*store_, alloc), IsOk());
  alloc.set_node("node-9");
  EXPECT_THAT(CreateObject(*store_, alloc), StatusIs(absl::StatusCode::kAlreadyExists, ""));
  auto owner = GetObject<v1::PodCIDRAllocation>(*store_, keys::PodCIDR("10.244.1.0/24"));
  ASSERT_THAT(owner, IsOk());
  EXPECT_EQ(owner->value.node(), "node-1");
}

TEST_P(StoreConformance, MalformedValuesAreReportedAndSkipped) {
  v1::Service svc;
  svc.set_namespace_("default");
  svc.set_name("web");
  svc.set_cluster_ip("10.96.0.10");
  auto* port = svc.add_ports();
  port->set_port(80);
  port->set_protocol(v1::TCP);
  ASSERT_THAT(PutObject(*store_, svc), IsOk());
  ASSERT_THAT(store_->Put(keys::Service("default", "garbage"), "not json"), IsOk());
  ASSERT_THAT(store_->Put(keys::Service("default", "typo"), R"({"clustrIP":"10.96.0.11"})"),
              IsOk());
  ASSERT_THAT(store_->Put(keys::Service("default", "renamed"), R"({"name":"other"})"), IsOk());
  ASSERT_THAT(store_->Put(keys::Service("default", "badport"), R"({"ports":[{"port":70000}]})"),
              IsOk());
  ASSERT_THAT(store_->Put(keys::Service("default", "noport"), R"({"clusterIP":"10.96.0.12"})"),
              IsOk());

  auto list = ListObjects<v1::Service>(*store_);
  ASSERT_THAT(list, IsOk());
  std::set<std::string> names;
  for (const auto& item : list->items) names.insert(item.value.name());
  EXPECT_EQ(names, (std::set<std::string>{"noport", "web"}));
  std::map<std::string, std::string> errors;
  for (const auto& error : list->errors) errors[error.key] = std::string(error.status.message());
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_THAT(errors[keys::Service("default", "garbage")], ::testing::HasSubstr("JSON"));
  EXPECT_THAT(errors[keys::Service("default", "typo")], ::testing::HasSubstr("clustrIP"));
  EXPECT_THAT(errors[keys::Service("default", "renamed")], ::testing::HasSubstr("does not match"));
  EXPECT_THAT(errors[keys::Service("default", "badport")], ::testing::HasSubstr("70000"));

  // A watch reports the same errors and keeps delivering the valid changes after them.
  std::mutex mu;
  std::vector<ObjectUpdate<v1::Service>> updates;
  std::condition_variable cv;
  auto watch = WatchObjects<v1::Service>(*store_, 0, [&](const ObjectUpdate<v1::Service>& u) {
    std::lock_guard<std::mutex> lock(mu);
    updates.push_back(u);
    cv.notify_all();
  });
  ASSERT_THAT(watch, IsOk());
  ASSERT_THAT(store_->Put(keys::Service("default", "garbage2"), "{"), IsOk());
  svc.set_name("api");
  ASSERT_THAT(PutObject(*store_, svc), IsOk());
  ASSERT_THAT(store_->Delete(keys::Service("default", "web")), IsOk());
  std::unique_lock<std::mutex> lock(mu);
  auto count = [&] {
    size_t n = 0;
    for (const auto& u : updates) n += u.events.size() + u.errors.size();
    return n;
  };
  // Reset: 2 valid + 4 errors; then 1 error, 1 put, 1 delete.
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(15), [&] { return count() == 9; }))
      << "got " << count();
  ASSERT_TRUE(updates.front().reset);
  EXPECT_THAT(updates.front().events, SizeIs(2));
  EXPECT_THAT(updates.front().errors, SizeIs(4));
  std::vector<std::string> tail;
  for (size_t i = 1; i < updates.size(); ++i) {
    for (const auto& e : updates[i].errors) tail.push_back("error " + e.key);
    for (const auto& e : updates[i].events) {
      tail.push_back((e.type == EventType::kPut ? "put " : "delete ") +
                     e.object.value.namespace_() + "/" + e.object.value.name());
    }
  }
  EXPECT_THAT(tail, ElementsAre("error " + keys::Service("default", "garbage2"), "put default/api",
                                "delete default/web"));
}

}  // namespace cninet::agent::testing
