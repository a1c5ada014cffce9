// cninet::base: WriteFileAtomic's one durability policy, ReadFile and UniqueFd, on a real
// filesystem (a temporary directory).
#include "cninet/base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "cninet/base/fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_util.h"

namespace cninet {
namespace {

using ::cninet::testing::TempDir;

// Names of the entries of `dir`.
std::set<std::string> Entries(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.insert(e.path().filename().string());
  }
  return out;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(WriteFileAtomicTest, ReplacesTheFileWholeAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.Sub("net.conflist");
  ASSERT_TRUE(WriteFileAtomic(path, "first\n").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "second\n").ok());
  EXPECT_EQ(ReadFile(path).value(), "second\n");
  EXPECT_EQ(ModeOf(path), 0644u);
  EXPECT_THAT(Entries(dir.path()), ::testing::ElementsAre("net.conflist"));
}

TEST(WriteFileAtomicTest, AppliesTheModeRegardlessOfUmask) {
  TempDir dir;
  const std::string path = dir.Sub("secret");
  mode_t old = umask(0077);
  WriteFileOptions options;
  options.mode = 0640;
  absl::Status status = WriteFileAtomic(path, "x", options);
  umask(old);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ModeOf(path), 0640u);
}

TEST(WriteFileAtomicTest, MissingParentIsAnErrorUnlessAskedToCreateIt) {
  TempDir dir;
  const std::string path = dir.Sub("a/b/file");
  absl::Status status = WriteFileAtomic(path, "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(dir.Sub("a/b/file.tmp.")));
  WriteFileOptions options;
  options.create_parent_dirs = true;
  ASSERT_TRUE(WriteFileAtomic(path, "x", options).ok());
  EXPECT_EQ(ReadFile(path).value(), "x");
}

TEST(WriteFileAtomicTest, TemporaryNamesAreUniqueAndNeverFollowASymlink) {
  TempDir dir;
  const std::string path = dir.Sub("state");
  std::string seen_first, seen_second;
  // before_rename runs with the synced temporary in place: record its name each time.
  auto record = [&](std::string* into) {
    for (const std::string& name : Entries(dir.path())) {
      if (name.rfind("state.tmp.", 0) == 0) *into = name;
    }
  };
  WriteFileOptions options;
  options.before_rename = [&] { record(&seen_first); };
  ASSERT_TRUE(WriteFileAtomic(path, "1", options).ok());
  options.before_rename = [&] { record(&seen_second); };
  ASSERT_TRUE(WriteFileAtomic(path, "2", options).ok());
  ASSERT_FALSE(seen_first.empty());
  ASSERT_FALSE(seen_second.empty());
  EXPECT_NE(seen_first, seen_second);
  // The target itself may be a symlink elsewhere: the rename replaces the link, not its target.
  const std::string victim = dir.Sub("victim");
  ASSERT_TRUE(WriteFileAtomic(victim, "keep").ok());
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_EQ(symlink(victim.c_str(), path.c_str()), 0);
  ASSERT_TRUE(WriteFileAtomic(path, "new").ok());
  EXPECT_EQ(ReadFile(victim).value(), "keep");
  EXPECT_EQ(ReadFile(path).value(), "new");
}

TEST(WriteFileAtomicTest, ACrashBeforeTheRenameKeepsTheOldContent) {
  // A forked child stands for a process killed between the durable temporary and the rename.
  TempDir dir;
  const std::string path = dir.Sub("db");
  ASSERT_TRUE(WriteFileAtomic(path, "old").ok());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    WriteFileOptions options;
    options.before_rename = [] { _exit(7); };
    (void)WriteFileAtomic(path, "new", options);
    _exit(0);
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  ASSERT_EQ(WEXITSTATUS(wstatus), 7);
  EXPECT_EQ(ReadFile(path).value(), "old");
}

TEST(ReadFileTest, MissingFileIsNotFound) {
  TempDir dir;
  EXPECT_EQ(ReadFile(dir.Sub("nope")).status().code(), absl::StatusCode::kNotFound);
}

TEST(UniqueFdTest, ClosesOnResetDestructionAndMoveButNotAfterRelease) {
  TempDir dir;
  const std::string path = dir.Sub("f");
  ASSERT_TRUE(WriteFileAtomic(path, "x").ok());
  int raw = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    UniqueFd a(raw);
    UniqueFd b(std::move(a));
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.get(), raw);
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1);  // Closed by b's destructor.
  raw = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  UniqueFd c(raw);
  int released = c.Release();
  EXPECT_FALSE(c.valid());
  EXPECT_NE(fcntl(released, F_GETFD), -1);  // Still open: ownership was given up.
  close(released);
}

}  // namespace
}  // namespace cninet
