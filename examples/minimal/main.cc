#include "cninet/cni/cni.h"

using namespace cninet::cni;  // NOLINT: keeps the README example short.

// A chained plugin that adds the "nameservers" of its configuration to the result's DNS.
class DnsPlugin : public Plugin {
 public:
  absl::StatusOr<Result> Add(const CmdArgs& args) override {
    if (!args.conf.prev_result) return CniError(ErrorCode::kInvalidConfig, "must be chained");
    Result result = *args.conf.prev_result;
    for (const auto& ns : args.conf.raw.value("nameservers", nlohmann::json::array())) {
      if (!ns.is_string()) return CniError(ErrorCode::kInvalidConfig, "nameservers: strings only");
      result.dns.nameservers.push_back(ns.get<std::string>());
    }
    return result;  // Printed in the request's cniVersion by PluginMain.
  }
  absl::Status Del(const CmdArgs&) override { return absl::OkStatus(); }
};

int main() {
  DnsPlugin plugin;
  return PluginMain(plugin, {.about = "adds nameservers to the result"});
}
