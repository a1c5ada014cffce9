// The datapath's tc and pin glue: listing filters, pinned programs attached without loading,
// the clsact qdisc (removed when the datapath added it, kept when it was there), Unpin() removing
// the directories it created, and the error met under `ip netns exec`.
#include "cninet/datapath/tc.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "cninet/datapath/datapath.h"
#include "cninet/datapath/pins.h"
#include "dp_test_util.h"
#include "fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet::datapath::testing {
namespace {

using ::cninet::testing::ScopedNetns;
using ::cninet::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

bool Exists(const std::string& p) {
  std::error_code ec;
  return std::filesystem::exists(p, ec);
}

// A namespace with a veth pair (up0 up), the thread moved into it for the test.
class TcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ASSERT_TRUE(ns_.Exec("ip link add up0 type veth peer name up1 && ip link set up0 up").ok());
    guard_ = std::make_unique<ThreadNetnsGuard>(ns_.path());
    ASSERT_TRUE(guard_->status().ok()) << guard_->status();
  }
  bool HasClsact() {
    return ns_.Exec("tc qdisc show dev up0").out.find("clsact") != std::string::npos;
  }

  ScopedNetns ns_{"dptc"};
  std::unique_ptr<ThreadNetnsGuard> guard_;
};

TEST_F(TcTest, ListsFiltersAndFindsHooks) {
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  auto a = (*dp)->Attach(Hook::kFromWorld, "up0");
  ASSERT_TRUE(a.ok()) << a.status();
  auto in = ListTcFilters("up0", /*ingress=*/true);
  ASSERT_TRUE(in.ok()) << in.status();
  ASSERT_EQ(in->size(), 1u);
  EXPECT_TRUE((*in)[0].Is(Hook::kFromWorld));
  EXPECT_FALSE((*in)[0].Is(Hook::kFromPod));
  EXPECT_NE((*in)[0].program_id, 0u);
  EXPECT_TRUE(*HookAttached(Hook::kFromWorld, "up0"));
  EXPECT_FALSE(*HookAttached(Hook::kToWorld, "up0"));
  EXPECT_TRUE(ListTcFilters("up0", /*ingress=*/false)->empty());
  EXPECT_EQ(ListTcFilters("nosuchif", true).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(TcTest, PinnedProgramAttachesWithoutLoading) {
  ScopedBpffs fs;
  ASSERT_TRUE(fs.status().ok()) << fs.status();
  DatapathConfig c = StandardConfig();
  c.pin_maps = true;
  c.bpffs_root = fs.path();
  c.instance = "pinprog";
  auto dp = Datapath::Create(c);
  ASSERT_TRUE(dp.ok()) << dp.status();
  auto path = (*dp)->PinProgram(Hook::kFromPod);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, PinLayout::For(fs.path(), "pinprog").ProgramPath("from_pod"));
  auto prog = BpfProgram::OpenPinned(*path);
  ASSERT_TRUE(prog.ok()) << prog.status();
  EXPECT_EQ(prog->id(), (*dp)->Program(Hook::kFromPod)->id());
  auto a = prog->Attach(Hook::kFromPod, "up0");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(*HookAttached(Hook::kFromPod, "up0"));
  EXPECT_EQ(BpfProgram::OpenPinned(fs.path() + "/none").status().code(),
            absl::StatusCode::kNotFound);
  // OpenPinned() copes with the programs/ directory beside the maps.
  auto reopened = Datapath::OpenPinned(PinLayout::For(fs.path(), "pinprog"));
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->config().instance, "pinprog");
}

TEST_F(TcTest, DetachingTheLastFilterRemovesTheClsactTheDatapathAdded) {
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  ASSERT_FALSE(HasClsact());
  auto in = (*dp)->Attach(Hook::kFromWorld, "up0");
  auto out = (*dp)->Attach(Hook::kToWorld, "up0");
  ASSERT_TRUE(in.ok() && out.ok());
  EXPECT_TRUE(HasClsact());
  ASSERT_TRUE(in->Detach().ok());
  EXPECT_TRUE(HasClsact()) << "to-world still uses it";
  // A Release()d filter removed by DetachHook (another process's way) counts the same.
  out->Release();
  ASSERT_TRUE(DetachHook(Hook::kToWorld, "up0").ok());
  EXPECT_FALSE(HasClsact()) << ns_.Exec("tc qdisc show dev up0").out;
}

TEST_F(TcTest, DetachingKeepsAClsactThatWasThere) {
  ASSERT_TRUE(ns_.Exec("tc qdisc add dev up0 clsact").ok());
  auto dp = Datapath::Create(StandardConfig());
  ASSERT_TRUE(dp.ok()) << dp.status();
  {
    auto in = (*dp)->Attach(Hook::kFromWorld, "up0");
    ASSERT_TRUE(in.ok()) << in.status();
  }
  EXPECT_FALSE(*HookAttached(Hook::kFromWorld, "up0"));
  EXPECT_TRUE(HasClsact()) << "the clsact qdisc was there before the datapath";
}

TEST(Unpin, RemovesTheDirectoriesItCreated) {
  CNINET_REQUIRE_ROOT();
  ScopedBpffs fs;
  ASSERT_TRUE(fs.status().ok()) << fs.status();
  DatapathConfig c = StandardConfig();
  c.pin_maps = true;
  c.bpffs_root = fs.path();
  PinLayout other = PinLayout::For(fs.path(), "other");
  PinLayout mine = PinLayout::For(fs.path(), "mine");
  {
    c.instance = "other";
    auto first = Datapath::Create(c);
    ASSERT_TRUE(first.ok()) << first.status();
    c.instance = "mine";
    auto dp = Datapath::Create(c);
    ASSERT_TRUE(dp.ok()) << dp.status();
    ASSERT_TRUE((*dp)->PinProgram(Hook::kFromPod).ok());
    ASSERT_TRUE((*dp)->Unpin().ok());
    EXPECT_FALSE(Exists(mine.ProgramDir()));
    EXPECT_FALSE(Exists(mine.MapDir()));
    EXPECT_TRUE(Exists(other.MapDir())) << "another instance's pins stay";
    // The last instance's Unpin() (through OpenPinned, as cninet-dp unpin) removes the root too.
    auto last = Datapath::OpenPinned(other);
    ASSERT_TRUE(last.ok()) << last.status();
    ASSERT_TRUE((*last)->Unpin().ok());
  }
  EXPECT_FALSE(Exists(other.MapDir()));
  EXPECT_FALSE(Exists(other.Root())) << "the shared cninet directory goes once empty";
}

// What `ip netns exec NAME` does: enter the named network namespace and a new mount namespace
// with sysfs mounted afresh on /sys (so /sys/fs/bpf is a plain sysfs directory). The error must
// name the fix.
TEST(Datapath, UnderIpNetnsExecTheErrorNamesNsenter) {
  CNINET_REQUIRE_ROOT();
  ScopedNetns ns("dpnsx");
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipefd[0]);
    int netns = open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (netns < 0 || setns(netns, CLONE_NEWNET) != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        umount2("/sys", MNT_DETACH) != 0 || mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0) {
      _exit(3);
    }
    DatapathConfig c = StandardConfig();
    c.pin_maps = true;
    c.bpffs_root = "/sys/fs/bpf";
    auto dp = Datapath::Create(c);
    std::string msg(dp.ok() ? "created" : std::string(dp.status().message()));
    (void)!write(pipefd[1], msg.data(), msg.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) msg.append(buf, n);
  close(pipefd[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child setup failed " << status;
  EXPECT_THAT(msg, HasSubstr("ip netns exec"));
  EXPECT_THAT(msg, HasSubstr("nsenter --net=/run/netns/" + ns.name()));
}

// Outside that case the error stays the plain one.
TEST(Datapath, OnAPlainDirectoryTheErrorSaysMount) {
  CNINET_REQUIRE_ROOT();
  TempDir dir;
  DatapathConfig c = StandardConfig();
  c.pin_maps = true;
  c.bpffs_root = dir.path();
  auto dp = Datapath::Create(c);
  EXPECT_THAT(std::string(dp.status().message()), Not(HasSubstr("nsenter")));
}

}  // namespace
}  // namespace cninet::datapath::testing
