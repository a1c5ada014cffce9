// libFuzzer target: Result::Parse (prevResult, delegated IPAM output, the runtime's cache) and
// ToJson of every supported version.
// Properties: no crash/UB/leak; failures carry code 1/6; every emission parses back, and
// emitting the re-parsed result in the same version gives the same JSON (conversion is
// idempotent); a 1.1.0 result re-parses from its 1.1.0 emission to an equal Result.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cninet/cni/types.h"
#include "cninet/cni/version.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cninet;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cni::Result> r = cni::Result::Parse(text);
  if (!r.ok()) {
    fuzz::RequireCode(r.status(), {1, 6}, "Result::Parse error code");
    return 0;
  }
  for (std::string_view v : cni::SupportedVersions()) {
    absl::StatusOr<nlohmann::json> out = r->ToJson(v);
    if (!out.ok()) {
      fuzz::RequireCode(out.status(), {7}, "Result::ToJson error code");
      fuzz::Require(!r->Validate().ok(), "ToJson failed on a valid result");
      continue;
    }
    fuzz::Require((*out)["cniVersion"] == std::string(v), "emitted cniVersion differs");
    absl::StatusOr<std::string> dumped = r->ToString(v);
    fuzz::Require(dumped.ok(), "ToString fails where ToJson succeeds");
    absl::StatusOr<cni::Result> back = cni::Result::Parse(*dumped);
    fuzz::Require(back.ok(), "an emitted result does not parse");
    absl::StatusOr<nlohmann::json> again = back->ToJson(v);
    fuzz::Require(again.ok() && *again == *out, "emit(parse(emit(r))) != emit(r)");
    if (v == cni::kCurrentVersion && r->cni_version == cni::kCurrentVersion) {
      fuzz::Require(*back == *r, "1.1.0 round trip is not lossless");
    }
  }
  return 0;
}
