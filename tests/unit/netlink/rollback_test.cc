// Rollback guard semantics (no kernel involved; the e2e suite uses it on real links).
#include "cninet/netlink/rollback.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cninet::netlink {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(RollbackTest, UndoesInReverseOrderOnDestruction) {
  std::vector<int> order;
  {
    Rollback rb;
    for (int i = 1; i <= 3; ++i) {
      rb.Add("step", [&order, i] {
        order.push_back(i);
        return absl::OkStatus();
      });
    }
    EXPECT_EQ(rb.size(), 3u);
  }
  EXPECT_THAT(order, ElementsAre(3, 2, 1));
}

TEST(RollbackTest, CommitKeepsEverything) {
  int runs = 0;
  {
    Rollback rb;
    rb.Add("a", [&] {
      ++runs;
      return absl::OkStatus();
    });
    rb.Commit();
    EXPECT_EQ(rb.size(), 0u);
  }
  EXPECT_EQ(runs, 0);
}

TEST(RollbackTest, FailuresDoNotStopLaterStepsAndFirstIsReported) {
  std::vector<std::string> ran;
  Rollback rb;
  rb.Add("first", [&] {
    ran.push_back("first");
    return absl::OkStatus();
  });
  rb.Add("second", [&] {
    ran.push_back("second");
    return absl::InternalError("boom");
  });
  rb.Add("third", [&] {
    ran.push_back("third");
    return absl::NotFoundError("gone");
  });
  absl::Status st = rb.Undo();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("undo third"));
  EXPECT_THAT(ran, ElementsAre("third", "second", "first"));
  EXPECT_EQ(rb.size(), 0u);
  EXPECT_TRUE(rb.Undo().ok());  // Nothing left: running again is a no-op.
}

}  // namespace
}  // namespace cninet::netlink
