// cninet-cni: executes a CNI network configuration against a network namespace, a drop-in for
// libcni's cnitool (same arguments, environment and container ID derivation).
//
//   cninet-cni add|check|del|gc|status NAME NETNS [-i IFNAME]
//
// Environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_IFNAME (default eth0),
// CNI_ARGS ("K=V;K=V"), CAP_ARGS (JSON object of capability arguments), and our addition
// CNI_CACHE_DIR (default /var/lib/cni, libcni's). The result of `add` is printed on stdout.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "cninet/cni/cni.h"
#include "sha512.h"

namespace {

using cninet::cni::NetConfList;
using cninet::cni::Runtime;
using cninet::cni::RuntimeConf;
using cninet::cni::RuntimeOptions;

std::string Env(const char* name, std::string fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

int Usage() {
  std::cerr << "usage: cninet-cni add|check|del|gc|status NAME NETNS [-i IFNAME]\n"
               "env: NETCONFPATH, CNI_PATH, CNI_IFNAME, CNI_ARGS, CAP_ARGS, CNI_CACHE_DIR\n";
  return 2;
}

int Fail(const absl::Status& s) {
  std::cerr << "cninet-cni: " << s.message();
  std::string details = cninet::cni::GetErrorDetails(s);
  if (!details.empty()) std::cerr << " (" << details << ")";
  std::cerr << " [CNI error code " << cninet::cni::GetErrorCode(s) << "]" << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string ifname;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "-i" || a == "--ifname") && i + 1 < argc) {
      ifname = argv[++i];
    } else if (a.rfind("--ifname=", 0) == 0) {
      ifname = a.substr(9);
    } else if (a == "-h" || a == "--help") {
      return Usage();
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() < 3) return Usage();
  const std::string& op = pos[0];
  if (op != "add" && op != "check" && op != "del" && op != "gc" && op != "status") return Usage();

  auto list = cninet::cni::LoadConfList(Env("NETCONFPATH", "/etc/cni/net.d"), pos[1]);
  if (!list.ok()) return Fail(list.status());

  RuntimeConf rt;
  std::error_code ec;
  rt.netns = std::filesystem::absolute(pos[2], ec).string();
  // cnitool's container ID: "cnitool-" + hex of the first 10 bytes of SHA-512(netns path).
  auto digest = cninet::tool::Sha512(rt.netns);
  char hex[21] = {};
  for (int i = 0; i < 10; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  rt.container_id = std::string("cnitool-") + hex;
  rt.ifname = !ifname.empty() ? ifname : Env("CNI_IFNAME", "eth0");
  if (std::string a = Env("CNI_ARGS"); !a.empty()) {
    for (absl::string_view pair : absl::StrSplit(a, ';')) {
      std::vector<std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
      if (kv.size() != 2 || kv[0].empty() || kv[1].empty()) {
        return Fail(cninet::cni::CniError(cninet::cni::ErrorCode::kInvalidEnvironment,
                                          cninet::StrCat("invalid CNI_ARGS pair \"", pair, "\"")));
      }
      rt.args.emplace_back(kv[0], kv[1]);
    }
  }
  if (std::string caps = Env("CAP_ARGS"); !caps.empty()) {
    rt.capability_args = nlohmann::json::parse(caps, nullptr, false);
    if (!rt.capability_args.is_object()) {
      return Fail(cninet::cni::CniError(cninet::cni::ErrorCode::kDecodeFailure,
                                        "CAP_ARGS must be a JSON object"));
    }
  }

  RuntimeOptions options;
  for (absl::string_view p : absl::StrSplit(Env("CNI_PATH"), ':', absl::SkipEmpty())) {
    options.plugin_paths.emplace_back(p);
  }
  options.cache_dir = Env("CNI_CACHE_DIR", "/var/lib/cni");
  Runtime runtime(options);

  if (op == "add") {
    auto result = runtime.AddNetworkList(*list, rt);
    if (!result.ok()) return Fail(result.status());
    auto json = result->ToJson();
    if (!json.ok()) return Fail(json.status());
    std::cout << json->dump(4) << std::endl;
    return 0;
  }
  absl::Status s;
  if (op == "check") s = runtime.CheckNetworkList(*list, rt);
  if (op == "del") s = runtime.DelNetworkList(*list, rt);
  // Like cnitool: GC with no valid attachments (everything of this network is stale).
  if (op == "gc") s = runtime.GcNetworkList(*list, {});
  if (op == "status") s = runtime.StatusNetworkList(*list);
  return s.ok() ? 0 : Fail(s);
}
