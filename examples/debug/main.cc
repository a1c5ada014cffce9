// cninet-debug: a chainable CNI plugin that records every invocation as one JSON line in the
// file named by its "file" key and passes prevResult through unchanged. Useful to see exactly
// what a runtime hands to a chained plugin.
//
//   {"type": "cninet-debug", "file": "/tmp/cni-debug.log",
//    "fail": {"ADD": 11}}            // optional: fail a command with a CNI code (for testing)
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <string>

#include "cninet/cni/cni.h"

namespace {

using cninet::cni::CmdArgs;
using cninet::cni::Command;
using cninet::cni::ErrorCode;

class DebugPlugin : public cninet::cni::Plugin {
 public:
  absl::StatusOr<cninet::cni::Result> Add(const CmdArgs& args) override {
    CNINET_RETURN_IF_ERROR(Record(args));
    if (args.conf.prev_result.has_value()) return *args.conf.prev_result;
    return cninet::cni::Result{};  // First in a chain: an empty result.
  }
  absl::Status Del(const CmdArgs& args) override { return Record(args); }
  absl::Status Check(const CmdArgs& args) override { return Record(args); }
  absl::Status Gc(const CmdArgs& args) override { return Record(args); }
  absl::Status Status(const CmdArgs& args) override { return Record(args); }

 private:
  // Appends one line {"command", "containerID", ...} under an exclusive lock, then applies the
  // configured failure for this command, if any.
  static absl::Status Record(const CmdArgs& args) {
    const nlohmann::json& raw = args.conf.raw;
    std::string command(cninet::cni::CommandName(args.command));
    if (auto it = raw.find("file"); it != raw.end()) {
      if (!it->is_string() || it->get<std::string>().empty()) {
        return cninet::cni::CniError(ErrorCode::kInvalidConfig,
                                     "\"file\" must be a non-empty string");
      }
      nlohmann::json line = {{"command", command},
                             {"containerID", args.container_id},
                             {"netns", args.netns},
                             {"ifname", args.ifname},
                             {"args", args.args.ToString()},
                             {"path", cninet::StrJoin(args.path, ":")},
                             {"config", raw}};
      std::string text = line.dump() + "\n";
      std::string path = it->get<std::string>();
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd < 0) return cninet::ErrnoStatus(errno, cninet::StrCat("open ", path));
      flock(fd, LOCK_EX);
      ssize_t n = write(fd, text.data(), text.size());
      int err = errno;
      close(fd);
      if (n != static_cast<ssize_t>(text.size()))
        return cninet::ErrnoStatus(err, cninet::StrCat("write ", path));
    }
    if (auto fail = raw.find("fail");
        fail != raw.end() && fail->is_object() && fail->contains(command)) {
      const auto& code = (*fail)[command];
      if (code.is_number_unsigned()) {
        return cninet::cni::CniError(code.get<uint32_t>(),
                                     cninet::StrCat("cninet-debug: configured to fail ", command));
      }
    }
    return absl::OkStatus();
  }
};

}  // namespace

int main() {
  DebugPlugin plugin;
  return cninet::cni::PluginMain(
      plugin, {.about = "cninet-debug: records CNI invocations, passes prevResult"});
}
