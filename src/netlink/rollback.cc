#include "cninet/netlink/rollback.h"

#include "cninet/base/log.h"
#include "cninet/base/status.h"

namespace cninet::netlink {

Rollback::~Rollback() { (void)Undo(); }

void Rollback::Add(std::string_view what, std::function<absl::Status()> undo) {
  steps_.emplace_back(std::string(what), std::move(undo));
}

void Rollback::Commit() { steps_.clear(); }

absl::Status Rollback::Undo() {
  absl::Status first;
  while (!steps_.empty()) {
    auto step = std::move(steps_.back());
    steps_.pop_back();
    absl::Status st = step.second ? step.second() : absl::OkStatus();
    if (!st.ok()) {
      CNINET_LOG(kWarning, "rollback: undoing ", step.first, " failed: ", st.ToString());
      if (first.ok()) first = Annotate(st, cninet::StrCat("undo ", step.first));
    } else {
      CNINET_LOG(kDebug, "rollback: undid ", step.first);
    }
  }
  return first;
}

}  // namespace cninet::netlink
