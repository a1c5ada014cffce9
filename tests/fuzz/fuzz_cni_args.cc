// libFuzzer target: CniArgs::Parse (the CNI_ARGS environment variable).
// Properties: no crash/UB/leak; failures carry code 4; ToString parses back to the same pairs;
// Get returns the last value of a key; CheckKnown fails only with code 2.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cninet/cni/conf.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cninet;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cni::CniArgs> args = cni::CniArgs::Parse(text);
  if (!args.ok()) {
    fuzz::RequireCode(args.status(), {4}, "CniArgs::Parse error code");
    return 0;
  }
  absl::StatusOr<cni::CniArgs> back = cni::CniArgs::Parse(args->ToString());
  fuzz::Require(back.ok(), "ToString does not parse back");
  fuzz::Require(back->pairs() == args->pairs(), "ToString does not round-trip the pairs");
  for (const auto& [key, value] : args->pairs()) {
    std::optional<std::string> got = args->Get(key);
    fuzz::Require(got.has_value(), "Get misses a parsed key");
    std::string last;
    for (const auto& [k, v] : args->pairs()) {
      if (k == key) last = v;
    }
    fuzz::Require(*got == last, "Get is not the last value of the key");
  }
  (void)args->ignore_unknown();
  (void)args->k8s_pod_name();
  absl::Status known = args->CheckKnown({"K8S_POD_NAMESPACE", "K8S_POD_NAME"});
  if (!known.ok()) fuzz::RequireCode(known, {2}, "CheckKnown error code");
  return 0;
}
