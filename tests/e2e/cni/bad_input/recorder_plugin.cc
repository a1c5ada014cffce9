// cninet-test-recorder: the plugin the bad-input tests execute. It is built with
// cni::PluginMain and does nothing to the host: every handler appends one line
//   "<COMMAND> <containerID> <ifname> <netns> <number of valid attachments>"
// to the file named by $CNINET_RECORD_FILE, so a test can tell whether PluginMain let an
// invocation through to the plugin. Config key "failWith": {"ADD": 123, ...} makes a handler
// fail with that CNI code (to test error pass-through).
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "cninet/cni/cni.h"

namespace {

using cninet::cni::CmdArgs;
using cninet::cni::Result;

class Recorder : public cninet::cni::Plugin {
 public:
  absl::StatusOr<Result> Add(const CmdArgs& args) override {
    CNINET_RETURN_IF_ERROR(Record(args));
    if (args.conf.prev_result.has_value()) return *args.conf.prev_result;
    Result r;
    cninet::cni::Interface intf;
    intf.name = args.ifname;
    intf.mac = "02:00:00:00:00:01";
    intf.mtu = 1450;
    intf.sandbox = args.netns;
    r.interfaces.push_back(intf);
    cninet::cni::IPConfig ip;
    CNINET_ASSIGN_OR_RETURN(ip.address, cninet::cni::IPPrefix::Parse("10.22.0.5/24"));
    CNINET_ASSIGN_OR_RETURN(ip.gateway, cninet::cni::IPAddress::Parse("10.22.0.1"));
    ip.interface = 0;
    r.ips.push_back(ip);
    cninet::cni::Route route;
    CNINET_ASSIGN_OR_RETURN(route.dst, cninet::cni::IPPrefix::Parse("0.0.0.0/0"));
    route.gw = ip.gateway;
    route.mtu = 1400;
    route.priority = 10;
    r.routes.push_back(route);
    r.dns.nameservers = {"10.22.0.1"};
    return r;
  }
  absl::Status Del(const CmdArgs& args) override { return Record(args); }
  absl::Status Check(const CmdArgs& args) override { return Record(args); }
  absl::Status Gc(const CmdArgs& args) override { return Record(args); }
  absl::Status Status(const CmdArgs& args) override { return Record(args); }

 private:
  static absl::Status Record(const CmdArgs& args) {
    std::string command(cninet::cni::CommandName(args.command));
    // A log line: it must reach stderr, never stdout.
    CNINET_LOG(kWarning, "recorder handler ran: ", command);
    const char* file = std::getenv("CNINET_RECORD_FILE");
    if (file == nullptr || *file == '\0') {
      return cninet::cni::CniError(cninet::cni::ErrorCode::kInvalidEnvironment,
                                   "CNINET_RECORD_FILE is not set");
    }
    std::string line = cninet::StrCat(command, " ", args.container_id, " ", args.ifname, " ",
                                      args.netns.empty() ? "-" : args.netns, " ",
                                      args.valid_attachments.size(), "\n");
    int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return cninet::ErrnoStatus(errno, cninet::StrCat("open ", file));
    ssize_t n = write(fd, line.data(), line.size());
    int err = errno;
    close(fd);
    if (n != static_cast<ssize_t>(line.size())) {
      return cninet::ErrnoStatus(err, cninet::StrCat("write ", file));
    }
    const nlohmann::json& raw = args.conf.raw;
    if (auto fail = raw.find("failWith"); fail != raw.end() && fail->is_object() &&
                                          fail->contains(command) &&
                                          (*fail)[command].is_number_unsigned()) {
      return cninet::cni::CniError((*fail)[command].get<uint32_t>(),
                                   cninet::StrCat("recorder: configured to fail ", command));
    }
    return absl::OkStatus();
  }
};

}  // namespace

int main() {
  Recorder plugin;
  return cninet::cni::PluginMain(plugin, {.about = "cninet-test-recorder: records invocations"});
}
