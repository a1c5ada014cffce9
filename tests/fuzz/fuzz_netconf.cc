// libFuzzer target: NetConf::Parse (what every plugin runs on its stdin).
// Properties: no crash/UB/leak; failures carry code 6/7 (or 1 from a prevResult of an
// unsupported version); a parsed configuration re-parses from its `raw` object to the same
// thing; its prevResult emits in every supported version or fails with a CNI code.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cninet/cni/conf.h"
#include "cninet/cni/version.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cninet;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cni::NetConf> conf = cni::NetConf::Parse(text);
  if (!conf.ok()) {
    fuzz::RequireCode(conf.status(), {1, 6, 7}, "NetConf::Parse error code");
    return 0;
  }
  (void)conf->IpamType();
  absl::StatusOr<cni::NetConf> again = cni::NetConf::FromJson(conf->raw);
  fuzz::Require(again.ok(), "NetConf::FromJson(raw) fails after Parse succeeded");
  fuzz::Require(again->raw == conf->raw, "NetConf raw differs after re-parse");
  fuzz::Require(again->name == conf->name && again->type == conf->type &&
                    again->cni_version == conf->cni_version,
                "NetConf typed keys differ after re-parse");
  fuzz::Require(again->prev_result.has_value() == conf->prev_result.has_value(),
                "prevResult presence differs after re-parse");
  if (conf->prev_result.has_value()) {
    for (std::string_view v : cni::SupportedVersions()) {
      absl::StatusOr<std::string> out = conf->prev_result->ToString(v);
      if (!out.ok()) fuzz::RequireCode(out.status(), {1, 7}, "prevResult ToString error code");
    }
  }
  return 0;
}
