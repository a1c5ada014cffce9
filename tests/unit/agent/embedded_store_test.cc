// The embedded store: the Store contract, persistence, crash safety (a second process crashing at
// every point of the write path, and SIGKILLed at random), torn and corrupt files, and sharing a
// directory between processes (watch, first-writer-wins races, leases of a dead process).
#include "cninet/agent/embedded_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "store_conformance.h"
#include "testing/test_util.h"

namespace cninet::agent::testing {
namespace {

using cninet::testing::CommandResult;
using cninet::testing::ReadFile;
using cninet::testing::Run;
using cninet::testing::TempDir;
using ::testing::SizeIs;

class EmbeddedEnv : public StoreEnv {
 public:
  absl::StatusOr<std::unique_ptr<Store>> OpenClient() override {
    EmbeddedStoreOptions options;
    options.dir = dir_.Sub("store");
    return OpenEmbeddedStore(options);
  }

 private:
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(Embedded, StoreConformance,
                         ::testing::Values(StoreKind{
                             "Embedded",
                             [] { return std::unique_ptr<StoreEnv>(new EmbeddedEnv()); }}),
                         StoreKindName);

std::unique_ptr<Store> Open(const std::string& dir, uint64_t snapshot_threshold = 8 << 20,
                            size_t max_history = 100000, size_t max_history_bytes = 32 << 20) {
  EmbeddedStoreOptions options;
  options.dir = dir;
  options.snapshot_threshold_bytes = snapshot_threshold;
  options.max_history_events = max_history;
  options.max_history_bytes = max_history_bytes;
  auto store = OpenEmbeddedStore(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// Runs the helper process (store_helper.cc).
CommandResult Helper(const std::vector<std::string>& args, std::vector<std::string> env = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  std::vector<std::string> argv = {CNINET_AGENT_STORE_HELPER};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, {}, env, timeout);
}

// Indices acknowledged by a helper ("ack I REV" lines).
std::vector<int> Acked(const std::string& out) {
  std::vector<int> acked;
  std::istringstream in(out);
  std::string word;
  int index;
  long long rev;
  while (in >> word >> index >> rev) {
    if (word == "ack") acked.push_back(index);
  }
  return acked;
}

TEST(EmbeddedStoreTest, OptionsAreValidated) {
  EmbeddedStoreOptions options;
  EXPECT_THAT(OpenEmbeddedStore(options), StatusIs(absl::StatusCode::kInvalidArgument, "dir"));
  TempDir tmp;
  cninet::testing::WriteFile(tmp.Sub("file"), "x");
  options.dir = tmp.Sub("file");
  EXPECT_THAT(OpenEmbeddedStore(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, "not a directory"));
  options.dir = tmp.Sub("ok");
  options.poll_interval = std::chrono::milliseconds(0);
  EXPECT_THAT(OpenEmbeddedStore(options),
              StatusIs(absl::StatusCode::kInvalidArgument, "poll_interval"));
}

TEST(EmbeddedStoreTest, ReopenKeepsDataRevisionsAndLeases) {
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  int64_t revision;
  LeaseId lease;
  {
    auto store = Open(dir);
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->Put("/k/a", "1"), IsOk());
    ASSERT_THAT(store->Put("/k/b", "2"), IsOk());
    ASSERT_THAT(store->Delete("/k/a"), IsOk());
    auto l = store->GrantLease(std::chrono::seconds(600));
    ASSERT_THAT(l, IsOk());
    lease = *l;
    auto r = store->Put("/k/c", "3", lease);
    ASSERT_THAT(r, IsOk());
    revision = *r;
  }
  struct stat sb;
  ASSERT_EQ(stat(dir.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0700u);
  auto store = Open(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->Revision(), IsOkAndHolds(revision));
  EXPECT_EQ(Snapshot(*store, "/k/"),
            (std::map<std::string, std::string>{{"/k/b", "2"}, {"/k/c", "3"}}));
  auto c = store->Get("/k/c");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->lease, lease);
  EXPECT_THAT(store->KeepAlive(lease), IsOk());
  auto next = store->Put("/k/d", "4");
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(*next, revision + 1);
}

TEST(EmbeddedStoreTest, SnapshotsFoldTheLogAndKeepEverything) {
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  {
    auto store = Open(dir, 4096);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 300; ++i) {
      ASSERT_THAT(store->Put("/k/" + std::to_string(i), std::string(64, 'x')), IsOk());
    }
    ASSERT_THAT(store->Delete("/k/7"), IsOk());
  }
  EXPECT_TRUE(std::filesystem::exists(dir + "/snapshot"));
  // The log is folded once it outgrows both the threshold and the snapshot.
  EXPECT_LT(std::filesystem::file_size(dir + "/wal"),
            std::max<uintmax_t>(4096, std::filesystem::file_size(dir + "/snapshot")) + 200);
  auto store = Open(dir, 4096);
  ASSERT_NE(store, nullptr);
  auto list = store->List("/k/");
  ASSERT_THAT(list, IsOk());
  EXPECT_THAT(list->kvs, SizeIs(299));
  EXPECT_EQ(list->revision, 1 + 300 + 1);
}

// Crash points of the write path; the helper dies at the 40th pass (after a few rotations for the
// snapshot points, with a 4 KiB threshold).
class CrashPointTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CrashPointTest, NoAcknowledgedWriteIsLostAndTheStoreStaysUsable) {
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  const std::string point = GetParam();
  const bool snapshot_point = point.rfind("append", 0) != 0;
  const int crash_after = snapshot_point ? 2 : 40;
  CommandResult r = Helper({dir, "write", "/k/", "0", "1000", "4096"},
                           {"CNINET_TEST_CRASH_POINT=" + point,
                            "CNINET_TEST_CRASH_AFTER=" + std::to_string(crash_after)});
  ASSERT_EQ(r.exit_code, 86) << "the helper did not crash at " << point << ": " << r.err;
  std::vector<int> acked = Acked(r.out);
  ASSERT_FALSE(acked.empty());
  const int in_flight = acked.back() + 1;

  auto store = Open(dir, 4096);
  ASSERT_NE(store, nullptr);
  auto list = store->List("/k/");
  ASSERT_THAT(list, IsOk());
  std::set<int> present;
  for (const KeyValue& kv : list->kvs) {
    int i = std::stoi(kv.key.substr(3));
    EXPECT_EQ(kv.value, "value-" + std::to_string(i));
    present.insert(i);
  }
  for (int i : acked) EXPECT_TRUE(present.count(i)) << "acknowledged write " << i << " lost";
  // Only the write in flight may be added; it is complete unless the crash tore its record.
  EXPECT_EQ(present.count(in_flight) == 1, point != "append-half")
      << "in-flight write " << in_flight;
  EXPECT_EQ(present.size(), acked.size() + (present.count(in_flight) ? 1 : 0));
  EXPECT_EQ(list->revision, 1 + static_cast<int64_t>(present.size()));

  // The store goes on from there, and a second recovery agrees.
  auto next = store->Put("/k/after", "x");
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(*next, list->revision + 1);
  store.reset();
  auto again = Open(dir, 4096);
  ASSERT_NE(again, nullptr);
  EXPECT_THAT(again->Revision(), IsOkAndHolds(*next));
  EXPECT_EQ(Snapshot(*again, "/k/").size(), present.size() + 1);
}

INSTANTIATE_TEST_SUITE_P(Embedded, CrashPointTest,
                         ::testing::Values("append-half", "append-before-sync", "append-synced",
                                           "snapshot-written", "snapshot-renamed", "wal-rotated"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string name = param_info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(EmbeddedStoreTest, SigkillAtRandomTimesLosesNoAcknowledgedWrite) {
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> delay_ms(100, 400);
  constexpr int kRounds = 6;
  std::vector<std::vector<int>> acked(kRounds);
  int killed = 0;
  for (int round = 0; round < kRounds; ++round) {
    CommandResult r =
        Helper({dir, "write", "/r" + std::to_string(round) + "/", "0", "1000000", "8192"}, {},
               std::chrono::milliseconds(delay_ms(rng)));
    if (r.exit_code == -1) killed++;
    acked[round] = Acked(r.out);
  }
  EXPECT_EQ(killed, kRounds) << "the helper should always be killed mid-way";
  auto store = Open(dir);
  ASSERT_NE(store, nullptr);
  int64_t total = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::string prefix = "/r" + std::to_string(round) + "/";
    auto list = store->List(prefix);
    ASSERT_THAT(list, IsOk());
    std::set<int> present;
    for (const KeyValue& kv : list->kvs) {
      int i = std::stoi(kv.key.substr(prefix.size()));
      EXPECT_EQ(kv.value, "value-" + std::to_string(i));
      present.insert(i);
    }
    // Writes are sequential: what survived is exactly 0..n-1, covering every acknowledgement.
    if (!present.empty()) {
      EXPECT_EQ(*present.rbegin(), static_cast<int>(present.size()) - 1)
          << "hole in round " << round;
    }
    EXPECT_GE(present.size(), acked[round].size()) << "round " << round;
    for (int i : acked[round]) EXPECT_TRUE(present.count(i)) << "round " << round << " lost " << i;
    total += static_cast<int64_t>(present.size());
  }
  EXPECT_THAT(store->Revision(), IsOkAndHolds(1 + total));
}

TEST(EmbeddedStoreTest, TornOrGarbageTailIsDiscarded) {
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  {
    auto store = Open(dir);
    ASSERT_NE(store, nullptr);
    for (const char* k : {"/k/a", "/k/b", "/k/c"}) ASSERT_THAT(store->Put(k, "v"), IsOk());
  }
  const std::string wal = dir + "/wal";
  // Garbage after the last record (a crashed writer's partial header): ignored.
  { std::ofstream(wal, std::ios::app | std::ios::binary) << "\x07\x00\x00"; }
  {
    auto store = Open(dir);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Snapshot(*store, "/k/").size(), 3u);
    EXPECT_THAT(store->Revision(), IsOkAndHolds(4));
  }
  // The last record cut short: that write is gone, the rest stays, and writing goes on.
  std::filesystem::resize_file(wal, std::filesystem::file_size(wal) - 3);
  auto store = Open(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Snapshot(*store, "/k/"),
            (std::map<std::string, std::string>{{"/k/a", "v"}, {"/k/b", "v"}}));
  EXPECT_THAT(store->Revision(), IsOkAndHolds(3));
  EXPECT_THAT(store->Put("/k/d", "v"), IsOkAndHolds(4));
  store.reset();
  auto again = Open(dir);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Snapshot(*again, "/k/").size(), 3u);
}

TEST(EmbeddedStoreTest, CorruptSnapshotIsDataLoss) {
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  {
    auto store = Open(dir, 4096);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 100; ++i)
      ASSERT_THAT(store->Put("/k/" + std::to_string(i), std::string(64, 'x')), IsOk());
  }
  const std::string snapshot = dir + "/snapshot";
  ASSERT_TRUE(std::filesystem::exists(snapshot));
  std::string data = ReadFile(snapshot);
  data[data.size() / 2] ^= 0x5a;
  cninet::testing::WriteFile(snapshot, data);
  EmbeddedStoreOptions options;
  options.dir = dir;
  EXPECT_THAT(OpenEmbeddedStore(options), StatusIs(absl::StatusCode::kDataLoss, "snapshot"));
}

TEST(EmbeddedStoreTest, WatchSeesAnotherProcessesWrites) {
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  auto store = Open(dir);
  ASSERT_NE(store, nullptr);
  WatchRecorder recorder;
  auto watch = store->Watch("/k/", 0, recorder.Callback());
  ASSERT_THAT(watch, IsOk());
  CommandResult r = Helper({dir, "write", "/k/", "0", "20"});
  ASSERT_TRUE(r.ok()) << r.err;
  std::map<std::string, std::string> expected;
  for (int i = 0; i < 20; ++i) expected["/k/" + std::to_string(i)] = "value-" + std::to_string(i);
  ASSERT_TRUE(recorder.WaitForState(expected));
  auto events = recorder.events();
  ASSERT_THAT(events, SizeIs(20));
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kv.mod_revision, events[i - 1].kv.mod_revision + 1);
  }
  EXPECT_EQ(recorder.resets(), 1);  // Only the initial one.
}

TEST(EmbeddedStoreTest, WatchFollowsAnotherProcessAcrossSnapshots) {
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  auto store = Open(dir);
  ASSERT_NE(store, nullptr);
  WatchRecorder recorder;
  auto watch = store->Watch("/k/", 0, recorder.Callback());
  ASSERT_THAT(watch, IsOk());
  // The helper rotates its log every 4 KiB (about every 8 writes of 500 bytes) while this
  // process follows it.
  constexpr int kWrites = 120;
  CommandResult r = Helper({dir, "write", "/k/", "0", std::to_string(kWrites), "4096", "500"});
  ASSERT_TRUE(r.ok()) << r.err;
  std::map<std::string, std::string> expected;
  for (int i = 0; i < kWrites; ++i) {
    std::string value = "value-" + std::to_string(i);
    value.resize(500, '.');
    expected["/k/" + std::to_string(i)] = value;
  }
  ASSERT_TRUE(recorder.WaitForState(expected));
  EXPECT_EQ(Snapshot(*store, "/k/"), expected);
  // Each change arrives once, in order, unless a reset replaced the history in between.
  RecordProperty("resets", recorder.resets());
  if (recorder.resets() == 1) {
    auto events = recorder.events();
    ASSERT_THAT(events, SizeIs(kWrites));
    for (size_t i = 1; i < events.size(); ++i) {
      ASSERT_EQ(events[i].kv.mod_revision, events[i - 1].kv.mod_revision + 1);
    }
  }
}

TEST(EmbeddedStoreTest, TwoProcessesRacingCreateHaveExactlyOneWinnerPerKey) {
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  { ASSERT_NE(Open(dir), nullptr); }
  constexpr int kKeys = 150;
  CommandResult results[2];
  std::thread a([&] {
    results[0] = Helper({dir, "create", "/cidr/", std::to_string(kKeys), "A"});
  });
  std::thread b([&] {
    results[1] = Helper({dir, "create", "/cidr/", std::to_string(kKeys), "B"});
  });
  a.join();
  b.join();
  ASSERT_TRUE(results[0].ok()) << results[0].err;
  ASSERT_TRUE(results[1].ok()) << results[1].err;
  std::map<int, std::string> winners;
  int lines = 0;
  for (int p = 0; p < 2; ++p) {
    std::istringstream in(results[p].out);
    std::string word;
    int i;
    while (in >> word >> i) {
      lines++;
      if (word == "won") {
        EXPECT_EQ(winners.count(i), 0u) << "key " << i << " won twice";
        winners[i] = p == 0 ? "A" : "B";
      }
    }
  }
  EXPECT_EQ(lines, 2 * kKeys);
  ASSERT_EQ(winners.size(), static_cast<size_t>(kKeys));
  auto store = Open(dir);
  ASSERT_NE(store, nullptr);
  for (const auto& [i, who] : winners) {
    auto kv = store->Get("/cidr/" + std::to_string(i));
    ASSERT_THAT(kv, IsOk());
    EXPECT_EQ(kv->value, who);
  }
}

TEST(EmbeddedStoreTest, LeaseOfADeadProcessExpires) {
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  auto store = Open(dir);
  ASSERT_NE(store, nullptr);
  WatchRecorder recorder;
  auto watch = store->Watch("/hb/", 0, recorder.Callback());
  ASSERT_THAT(watch, IsOk());
  CommandResult r = Helper({dir, "lease", "/hb/node-1", "2"});
  ASSERT_TRUE(r.ok()) << r.err;
  ASSERT_TRUE(recorder.WaitFor([&] { return recorder.events_locked().size() >= 1; }));
  EXPECT_EQ(recorder.events().front().kv.key, "/hb/node-1");
  // Nobody refreshes it: this process's store revokes it once the TTL has passed.
  ASSERT_TRUE(recorder.WaitFor([&] { return recorder.events_locked().size() == 2; },
                               std::chrono::seconds(15)));
  EXPECT_EQ(recorder.events()[1].type, EventType::kDelete);
  EXPECT_THAT(store->Get("/hb/node-1"), StatusIs(absl::StatusCode::kNotFound, ""));
}

TEST(EmbeddedStoreTest, HistoryLimitTurnsOldWatchesIntoResets) {
  TempDir tmp;
  auto store = Open(tmp.Sub("store"), 8 << 20, 10);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 30; ++i) ASSERT_THAT(store->Put("/k/" + std::to_string(i), "v"), IsOk());
  WatchRecorder old_watch;
  auto w1 = store->Watch("/k/", 2, old_watch.Callback());
  ASSERT_THAT(w1, IsOk());
  ASSERT_TRUE(old_watch.WaitFor([&] { return old_watch.resets_locked() == 1; }));
  EXPECT_EQ(old_watch.state().size(), 30u);
  WatchRecorder recent;
  auto w2 = store->Watch("/k/", 28, recent.Callback());
  ASSERT_THAT(w2, IsOk());
  ASSERT_TRUE(recent.WaitFor([&] { return recent.events_locked().size() == 4; }));
  EXPECT_EQ(recent.resets(), 0);

  // The byte bound: 1 KiB values, about 4 of them kept.
  auto small = Open(tmp.Sub("bytes"), 8 << 20, 100000, 4500);
  ASSERT_NE(small, nullptr);
  for (int i = 0; i < 30; ++i) {
    ASSERT_THAT(small->Put("/k/" + std::to_string(i), std::string(1024, 'v')), IsOk());
  }
  WatchRecorder old_bytes;
  auto w3 = small->Watch("/k/", 20, old_bytes.Callback());
  ASSERT_THAT(w3, IsOk());
  ASSERT_TRUE(old_bytes.WaitFor([&] { return old_bytes.resets_locked() == 1; }));
  WatchRecorder recent_bytes;
  auto w4 = small->Watch("/k/", 30, recent_bytes.Callback());
  ASSERT_THAT(w4, IsOk());
  ASSERT_TRUE(recent_bytes.WaitFor([&] { return recent_bytes.events_locked().size() == 2; }));
  EXPECT_EQ(recent_bytes.resets(), 0);
}

TEST(EmbeddedStoreTest, WatchHandleMayBeDestroyedFromItsCallback) {
  TempDir tmp;
  auto store = Open(tmp.Sub("store"));
  ASSERT_NE(store, nullptr);
  std::mutex mu;
  std::condition_variable cv;
  std::unique_ptr<WatchHandle> handle;
  int calls = 0;
  bool destroyed = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto w = store->Watch("/k/", 0, [&](const WatchUpdate&) {
      std::unique_ptr<WatchHandle> self;
      {
        std::lock_guard<std::mutex> inner(mu);
        calls++;
        self = std::move(handle);
      }
      self.reset();  // Stops the watch from inside it.
      std::lock_guard<std::mutex> inner(mu);
      destroyed = true;
      cv.notify_all();
    });
    ASSERT_THAT(w, IsOk());
    handle = *std::move(w);
  }
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return destroyed; }));
  lock.unlock();
  ASSERT_THAT(store->Put("/k/a", "1"), IsOk());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  lock.lock();
  EXPECT_EQ(calls, 1);
}

TEST(PrefixRangeEndTest, IncrementsTheLastByteThatCanBe) {
  EXPECT_EQ(PrefixRangeEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixRangeEnd("ab"), "ac");
  EXPECT_EQ(PrefixRangeEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixRangeEnd(std::string("\xff\xff", 2)), "");
  EXPECT_EQ(PrefixRangeEnd(""), "");
}

}  // namespace
}  // namespace cninet::agent::testing
