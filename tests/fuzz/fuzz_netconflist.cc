// libFuzzer target: NetConfList::Parse (what a runtime reads from /etc/cni/net.d) and the
// request configurations the runtime derives from it.
// Properties: no crash/UB/leak; failures carry code 6/7; SelectedVersion is a supported
// version or code 1; BuildPluginConfig for every plugin yields an object carrying the list's
// name and the selected version, without "capabilities", or fails with a CNI code.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "cninet/cni/conf.h"
#include "cninet/cni/runtime.h"
#include "cninet/cni/version.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cninet;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cni::NetConfList> list = cni::NetConfList::Parse(text);
  if (!list.ok()) {
    fuzz::RequireCode(list.status(), {6, 7}, "NetConfList::Parse error code");
    return 0;
  }
  fuzz::Require(!list->plugins.empty(), "parsed list without plugins");
  absl::StatusOr<std::string> version = list->SelectedVersion();
  if (!version.ok()) {
    fuzz::RequireCode(version.status(), {1}, "SelectedVersion error code");
    return 0;
  }
  fuzz::Require(cni::IsSupportedVersion(*version), "SelectedVersion is not supported");
  cni::RuntimeConf rt;
  rt.container_id = "fuzz";
  rt.netns = "/run/netns/fuzz";
  rt.capability_args = {{"portMappings", nlohmann::json::array()}, {"mac", "02:00:00:00:00:01"}};
  for (size_t i = 0; i < list->plugins.size(); ++i) {
    absl::StatusOr<nlohmann::json> conf =
        cni::Runtime::BuildPluginConfig(*list, i, *version, std::nullopt, rt, cni::Command::kAdd);
    if (!conf.ok()) {
      fuzz::RequireCode(conf.status(), {1, 6, 7}, "BuildPluginConfig error code");
      continue;
    }
    fuzz::Require(conf->is_object(), "request configuration is not an object");
    fuzz::Require((*conf)["name"] == list->name, "request configuration lost the list's name");
    fuzz::Require((*conf)["cniVersion"] == *version, "request configuration has another version");
    fuzz::Require(!conf->contains("capabilities"), "request configuration keeps capabilities");
    (void)conf->dump();
  }
  return 0;
}
