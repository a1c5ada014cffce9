// DiskStore: host-local's exact on-disk layout, atomic records, locking across processes and
// refusal to follow symlinks.
#include "cninet/ipam/disk_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include "cninet/base/strings.h"
#include "cninet/ipam/allocator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_matchers.h"
#include "testing/test_util.h"

namespace cninet::ipam {
namespace {

namespace fs = std::filesystem;
using cni::IPAddress;
using cninet::testing::ReadFile;
using cninet::testing::TempDir;
using cninet::testing::WriteFile;
using testing::CniStatusIs;
using ::testing::ElementsAre;
using testing::IsOk;

IPAddress Ip(const char* s) { return *IPAddress::Parse(s); }

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(DiskStore, WritesHostLocalLayoutExactly) {
  TempDir tmp;
  auto store = DiskStore::Open(tmp.Sub("data"), "mynet");
  ASSERT_THAT(store, IsOk());
  EXPECT_EQ((*store)->dir(), tmp.Sub("data") + "/mynet");
  ASSERT_THAT((*store)->Reserve(Lease{Ip("10.1.0.2"), "ctr1", "eth0"}, "0"), IsOk());
  ASSERT_THAT((*store)->Reserve(Lease{Ip("fd00::2"), "ctr1", "eth0"}, "1"), IsOk());
  std::string dir = tmp.Sub("data/mynet");
  EXPECT_EQ(ReadFile(dir + "/10.1.0.2"), "ctr1\r\neth0");
  EXPECT_EQ(ReadFile(dir + "/fd00::2"), "ctr1\r\neth0");
  EXPECT_EQ(ReadFile(dir + "/last_reserved_ip.0"), "10.1.0.2");
  EXPECT_EQ(ReadFile(dir + "/last_reserved_ip.1"), "fd00::2");
  // Nothing else: no temporary files are left behind.
  EXPECT_THAT(Names(dir), ElementsAre("10.1.0.2", "fd00::2", "last_reserved_ip.0",
                                      "last_reserved_ip.1", "lock"));
}

TEST(DiskStore, NamedTemporaryFilePathWritesTheSameLayout) {
  // Filesystems without O_TMPFILE: a named temporary file is linked into place and removed.
  TempDir tmp;
  auto store = DiskStore::Open(tmp.path(), "n", {.use_tmpfile = false});
  ASSERT_THAT(store, IsOk());
  EXPECT_EQ(*(*store)->Reserve(Lease{Ip("10.1.0.2"), "ctr1", "eth0"}, "0"), true);
  EXPECT_EQ(*(*store)->Reserve(Lease{Ip("10.1.0.2"), "ctr2", "eth0"}, "0"), false);
  EXPECT_EQ(ReadFile(tmp.Sub("n/10.1.0.2")), "ctr1\r\neth0");
  EXPECT_THAT(Names(tmp.Sub("n")), ElementsAre("10.1.0.2", "last_reserved_ip.0", "lock"));
}

TEST(DiskStore, CreatesDirectoriesWith0700AndLeasesWith0600) {
  TempDir tmp;
  ASSERT_THAT(DiskStore::Open(tmp.Sub("a/b"), "n"), IsOk());
  for (const char* d : {"a", "a/b", "a/b/n"}) {
    struct stat st;
    ASSERT_EQ(stat(tmp.Sub(d).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u) << d;
  }
  auto store = DiskStore::Open(tmp.Sub("a/b"), "n");
  ASSERT_THAT((*store)->Reserve(Lease{Ip("10.0.0.5"), "c", "eth0"}, "0"), IsOk());
  struct stat st;
  ASSERT_EQ(stat(tmp.Sub("a/b/n/10.0.0.5").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(DiskStore, ReservesExclusively) {
  TempDir tmp;
  auto store = DiskStore::Open(tmp.path(), "n");
  ASSERT_THAT(store, IsOk());
  EXPECT_EQ(*(*store)->Reserve(Lease{Ip("10.0.0.5"), "a", "eth0"}, "0"), true);
  EXPECT_EQ(*(*store)->Reserve(Lease{Ip("10.0.0.5"), "b", "eth0"}, "0"), false);
  EXPECT_EQ(ReadFile(tmp.Sub("n/10.0.0.5")), "a\r\neth0");
}

TEST(DiskStore, ReadsReferenceAndLegacyRecords) {
  TempDir tmp;
  std::string dir = tmp.Sub("n");
  WriteFile(dir + "/10.0.0.2", "ref-ctr\r\neth0");
  WriteFile(dir + "/10.0.0.3", "legacy-ctr\n");  // Old host-local: container ID only.
  WriteFile(dir + "/fd00::3", "  spaced\r\nnet1 \n");
  WriteFile(dir + "/last_reserved_ip.0", "10.0.0.3");
  WriteFile(dir + "/not-an-ip", "x\r\neth0");
  auto store = DiskStore::Open(tmp.path(), "n");
  ASSERT_THAT(store, IsOk());
  auto all = (*store)->List();
  ASSERT_THAT(all, IsOk());
  EXPECT_THAT(*all, ElementsAre(Lease{Ip("10.0.0.2"), "ref-ctr", "eth0"},
                                Lease{Ip("10.0.0.3"), "legacy-ctr", ""},
                                Lease{Ip("fd00::3"), "spaced", "net1"}));
  EXPECT_EQ(**(*store)->LastReserved("0"), Ip("10.0.0.3"));
  EXPECT_FALSE((*store)->LastReserved("1")->has_value());
  auto legacy = (*store)->FindByOwner("legacy-ctr", "eth0");
  ASSERT_THAT(legacy, IsOk());
  EXPECT_THAT(*legacy, ElementsAre(Lease{Ip("10.0.0.3"), "legacy-ctr", ""}));
  EXPECT_EQ(**(*store)->Get(Ip("10.0.0.2")), (Lease{Ip("10.0.0.2"), "ref-ctr", "eth0"}));
  EXPECT_FALSE((*store)->Get(Ip("10.0.0.9"))->has_value());
}

TEST(DiskStore, GarbageHintIsIgnored) {
  TempDir tmp;
  WriteFile(tmp.Sub("n/last_reserved_ip.0"), "garbage");
  auto store = DiskStore::Open(tmp.path(), "n");
  ASSERT_THAT(store, IsOk());
  auto last = (*store)->LastReserved("0");
  ASSERT_THAT(last, IsOk());
  EXPECT_FALSE(last->has_value());
}

TEST(DiskStore, ReleaseIsIdempotent) {
  TempDir tmp;
  auto store = DiskStore::Open(tmp.path(), "n");
  ASSERT_THAT((*store)->Reserve(Lease{Ip("10.0.0.5"), "a", "eth0"}, "0"), IsOk());
  EXPECT_THAT((*store)->Release(Ip("10.0.0.5")), IsOk());
  EXPECT_THAT((*store)->Release(Ip("10.0.0.5")), IsOk());
  EXPECT_FALSE(fs::exists(tmp.Sub("n/10.0.0.5")));
}

TEST(DiskStore, NeverFollowsSymlinks) {
  TempDir tmp;
  std::string dir = tmp.Sub("n");
  fs::create_directories(dir);
  WriteFile(tmp.Sub("secret"), "top secret");
  // A lease name planted as a symlink is neither read nor written through.
  fs::create_symlink(tmp.Sub("secret"), dir + "/10.0.0.7");
  fs::create_symlink(tmp.Sub("secret"), dir + "/last_reserved_ip.0");
  auto store = DiskStore::Open(tmp.path(), "n");
  ASSERT_THAT(store, IsOk());
  auto all = (*store)->List();
  ASSERT_THAT(all, IsOk());
  EXPECT_TRUE(all->empty());
  EXPECT_FALSE((*store)->LastReserved("0")->has_value());
  EXPECT_EQ(*(*store)->Reserve(Lease{Ip("10.0.0.7"), "a", "eth0"}, "0"), false);
  EXPECT_EQ(*(*store)->Reserve(Lease{Ip("10.0.0.8"), "a", "eth0"}, "0"), true);
  EXPECT_EQ(ReadFile(tmp.Sub("secret")), "top secret");
  // The hint symlink was replaced by a regular file, not written through.
  EXPECT_FALSE(fs::is_symlink(dir + "/last_reserved_ip.0"));

  // A network directory that is a symlink is refused outright.
  fs::create_directories(tmp.Sub("elsewhere"));
  fs::create_directory_symlink(tmp.Sub("elsewhere"), tmp.Sub("evil"));
  EXPECT_THAT(DiskStore::Open(tmp.path(), "evil"), CniStatusIs(5, "symlink"));
  // So is a lock file that is a symlink.
  fs::create_directories(tmp.Sub("locky"));
  fs::create_symlink(tmp.Sub("secret"), tmp.Sub("locky/lock"));
  EXPECT_THAT(DiskStore::Open(tmp.path(), "locky"), CniStatusIs(5, "lock"));
}

TEST(DiskStore, RejectsHostileNamesBeforeTouchingDisk) {
  TempDir tmp;
  EXPECT_THAT(DiskStore::Open(tmp.path(), "../escape"), CniStatusIs(7, "network name"));
  EXPECT_THAT(DiskStore::Open(tmp.path(), ".."), CniStatusIs(7, "network name"));
  EXPECT_THAT(DiskStore::Open("relative", "n"), CniStatusIs(7, "absolute"));
  EXPECT_THAT(DiskStore::Open(tmp.Sub("a\nb"), "n"), CniStatusIs(7, "control"));
  EXPECT_TRUE(Names(tmp.path()).empty());
  auto store = DiskStore::Open(tmp.path(), "n");
  ASSERT_THAT(store, IsOk());
  EXPECT_THAT((*store)->Reserve(Lease{Ip("10.0.0.1"), "a\r\nb", "eth0"}, "0"), CniStatusIs(4, ""));
  EXPECT_THAT((*store)->Reserve(Lease{Ip("10.0.0.1"), "a", "eth0"}, "../x"),
              CniStatusIs(7, "range ID"));
  EXPECT_THAT(Names(tmp.Sub("n")), ElementsAre("lock"));
}

TEST(DiskStore, OpenWithoutCreateChangesNothing) {
  TempDir tmp;
  EXPECT_THAT(DiskStore::Open(tmp.Sub("missing"), "n", {.create = false}),
              CniStatusIs(3, "does not exist"));
  EXPECT_THAT(DiskStore::Open(tmp.path(), "n", {.create = false}),
              CniStatusIs(3, "does not exist"));
  EXPECT_TRUE(Names(tmp.path()).empty());
}

TEST(DiskStore, CleanupRemovesDebrisOnly) {
  TempDir tmp;
  auto store = DiskStore::Open(tmp.path(), "n");
  ASSERT_THAT((*store)->Reserve(Lease{Ip("10.0.0.5"), "a", "eth0"}, "0"), IsOk());
  WriteFile(tmp.Sub("n/.cninet-tmp-123-0"), "a\r\neth0");
  ASSERT_THAT((*store)->Cleanup(), IsOk());
  EXPECT_THAT(Names(tmp.Sub("n")), ElementsAre("10.0.0.5", "last_reserved_ip.0", "lock"));
}

TEST(DiskStore, ThreadsSharingOneStoreOrOpeningTheirOwnNeverCollide) {
  // Threads of one process: some share a DiskStore (its mutex excludes them), others open their
  // own (flock on separate open files excludes them). 8 x 40 allocations, all distinct.
  TempDir tmp;
  auto shared = DiskStore::Open(tmp.path(), "n", {.sync = false});
  ASSERT_THAT(shared, IsOk());
  RangeSet set{{*Range::Parse("10.3.0.0/22")}};
  std::vector<std::vector<IPAddress>> got(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<DiskStore> own;
      Store* store = shared->get();
      if (t % 2 == 1) {
        own = *DiskStore::Open(tmp.path(), "n", {.sync = false});
        store = own.get();
      }
      for (int i = 0; i < 40; ++i) {
        auto lock = store->Lock();
        Allocator alloc(set, *store, 0);
        auto ip = alloc.Allocate(*lock, cninet::StrCat("t", t, "-", i), "eth0");
        if (ip.ok()) got[t].push_back(ip->address.address());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<IPAddress> all;
  size_t n = 0;
  for (const auto& v : got) {
    n += v.size();
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(n, 320u);
  EXPECT_EQ(all.size(), 320u) << "duplicate addresses";
  EXPECT_EQ((*shared)->List()->size(), 320u);
}

TEST(DiskStore, LockExcludesOtherProcesses) {
  TempDir tmp;
  auto store = DiskStore::Open(tmp.path(), "n");
  ASSERT_THAT(store, IsOk());
  auto lock = (*store)->Lock();
  ASSERT_THAT(lock, IsOk());
  // Another process (a different open file description, as host-local's) cannot take it.
  auto try_lock = [&] {
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(tmp.Sub("n/lock").c_str(), O_RDWR);
      _exit(flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  };
  EXPECT_FALSE(try_lock());
  lock->Unlock();
  EXPECT_TRUE(try_lock());
}

}  // namespace
}  // namespace cninet::ipam
