// A small plugin using the SDK: passes prevResult through and adds an interface MTU.
// `--self-test` runs it in-process through RunPlugin with a VERSION and an ADD request.
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>

#include "cninet/cni/cni.h"

namespace {

class MtuPlugin : public cninet::cni::Plugin {
 public:
  absl::StatusOr<cninet::cni::Result> Add(const cninet::cni::CmdArgs& args) override {
    cninet::cni::Result r = args.conf.prev_result.value_or(cninet::cni::Result{});
    for (auto& i : r.interfaces) i.mtu = args.conf.raw.value("mtu", 1500u);
    return r;
  }
  absl::Status Del(const cninet::cni::CmdArgs&) override { return absl::OkStatus(); }
};

int Invoke(MtuPlugin& p, const std::map<std::string, std::string>& env, const std::string& in,
           std::string* out) {
  std::istringstream is(in);
  std::ostringstream os, es;
  cninet::cni::PluginIo io;
  io.getenv = [&](std::string_view k) -> std::optional<std::string> {
    auto it = env.find(std::string(k));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  io.in = &is;
  io.out = &os;
  io.err = &es;
  int rc = cninet::cni::RunPlugin(p, {}, io);
  *out = os.str();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  MtuPlugin plugin;
  if (argc < 2 || std::strcmp(argv[1], "--self-test") != 0) return cninet::cni::PluginMain(plugin);
  std::string out;
  if (Invoke(plugin, {{"CNI_COMMAND", "VERSION"}}, R"({"cniVersion":"1.1.0"})", &out) != 0 ||
      out.find("1.1.0") == std::string::npos) {
    std::cerr << "VERSION failed: " << out << "\n";
    return 1;
  }
  std::string conf = R"({"cniVersion":"1.1.0","name":"n","type":"mtu","mtu":9000,
    "prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/proc/self/ns/net"}]}})";
  int rc = Invoke(plugin,
                  {{"CNI_COMMAND", "ADD"},
                   {"CNI_CONTAINERID", "c1"},
                   {"CNI_NETNS", "/proc/self/ns/net"},
                   {"CNI_IFNAME", "eth0"},
                   {"CNI_NETNS_OVERRIDE", "1"}},
                  conf, &out);
  if (rc != 0 || out.find("\"mtu\":9000") == std::string::npos) {
    std::cerr << "ADD failed: " << out << "\n";
    return 1;
  }
  std::cout << "cninet test_package: OK " << out;
  return 0;
}
