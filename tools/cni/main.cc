// cninet-cni: executes a CNI network configuration against a network namespace, a drop-in for
// libcni's cnitool (same arguments, environment and container ID derivation).
//
//   cninet-cni add|check|del NETWORK NETNS [-i IFNAME]
//   cninet-cni gc NETWORK [NETNS] (--valid CONTAINERID:IFNAME ... | --none-valid)
//   cninet-cni status NETWORK [NETNS]
//
// Environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_IFNAME (default eth0),
// CNI_ARGS ("K=V;K=V"), CAP_ARGS (JSON object of capability arguments), and our addition
// CNI_CACHE_DIR (default /var/lib/cni, libcni's). The result of `add` is printed on stdout.
// Usage errors exit 2, CNI errors 1.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "cninet/cni/cni.h"
#include "sha512.h"

namespace {

using cninet::cni::CniError;
using cninet::cni::ErrorCode;
using cninet::cni::GcAttachment;
using cninet::cni::Runtime;
using cninet::cni::RuntimeConf;
using cninet::cni::RuntimeOptions;

constexpr int kUsageError = 2;

std::string Env(const char* name, std::string fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

int Fail(const absl::Status& s) {
  std::cerr << "cninet-cni: " << s.message();
  std::string details = cninet::cni::GetErrorDetails(s);
  if (!details.empty()) std::cerr << " (" << details << ")";
  std::cerr << " [CNI error code " << cninet::cni::GetErrorCode(s) << "]" << std::endl;
  return 1;
}

// The command line, as parsed.
struct Options {
  std::string op;                  // add, check, del, gc, status.
  std::string network;             // NETWORK: the name of a network configuration in NETCONFPATH.
  std::string netns;               // NETNS: a network namespace path (optional for gc and status).
  std::string ifname;              // -i: overrides CNI_IFNAME.
  std::vector<std::string> valid;  // gc --valid CONTAINERID:IFNAME.
  bool none_valid = false;         // gc --none-valid.
};

const char* const kEnvHelp =
    "Environment: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_IFNAME (default eth0), "
    "CNI_ARGS (K=V;K=V), CAP_ARGS (JSON object), CNI_CACHE_DIR (default /var/lib/cni).";

// One subcommand: NETWORK, NETNS (required unless `netns_optional`), -i IFNAME.
CLI::App* AddSubcommand(CLI::App& app, Options& o, const std::string& name, const std::string& what,
                        bool netns_optional) {
  CLI::App* sub = app.add_subcommand(name, what);
  sub->footer(kEnvHelp);
  sub->add_option("NETWORK", o.network, "name of the network configuration in NETCONFPATH")
      ->required();
  CLI::Option* netns =
      sub->add_option("NETNS", o.netns, "path of the pod's network namespace (/run/netns/X)");
  if (!netns_optional) netns->required();
  sub->add_option("-i,--ifname", o.ifname,
                  "interface name in the pod (default: CNI_IFNAME or eth0)");
  sub->callback([&o, name] { o.op = name; });
  return sub;
}

// `gc` needs to be told which attachments are valid: deleting every cached attachment of the
// network must be asked for by name.
void AddGcOptions(CLI::App* gc, Options& o) {
  CLI::Option* valid =
      gc->add_option("--valid", o.valid,
                     "an attachment that is still in use, CONTAINERID:IFNAME (repeatable); "
                     "every other cached attachment of NETWORK is garbage-collected")
          ->allow_extra_args(false)
          ->check([](const std::string& v) -> std::string {
            size_t colon = v.find(':');
            return colon == std::string::npos || colon == 0 || colon + 1 == v.size()
                       ? "must be CONTAINERID:IFNAME"
                       : "";
          });
  CLI::Option* none =
      gc->add_flag("--none-valid", o.none_valid,
                   "no attachment of NETWORK is in use: garbage-collect every cached attachment");
  none->excludes(valid);
  gc->final_callback([&o] {
    if (o.valid.empty() && !o.none_valid) {
      throw CLI::ValidationError(
          "gc",
          "needs the attachments still in use: --valid CONTAINERID:IFNAME (repeatable), "
          "or --none-valid to garbage-collect every cached attachment of the network");
    }
  });
}

// Parses argv into `o`; returns an exit code when the program should stop (help or a usage
// error, already printed), else nullopt.
std::optional<int> ParseCommandLine(int argc, char** argv, Options& o) {
  CLI::App app(
      "cninet-cni: runs a CNI network configuration against a network namespace "
      "(cnitool-compatible)",
      "cninet-cni");
  app.footer(kEnvHelp);
  app.require_subcommand(1);
  AddSubcommand(app, o, "add", "attach NETNS to NETWORK and print the result", false);
  AddSubcommand(app, o, "check", "check the attachment of NETNS to NETWORK", false);
  AddSubcommand(app, o, "del", "detach NETNS from NETWORK", false);
  AddGcOptions(
      AddSubcommand(app, o, "gc", "free what NETWORK's plugins hold for stale attachments", true),
      o);
  AddSubcommand(app, o, "status", "ask NETWORK's plugins whether they are ready", true);
  // CLI11 would only say "A subcommand is required": name the word it did not know.
  const std::vector<std::string> kSubcommands = {"add", "check", "del", "gc", "status"};
  if (argc > 1 && argv[1][0] != '-' &&
      std::find(kSubcommands.begin(), kSubcommands.end(), argv[1]) == kSubcommands.end()) {
    std::cerr << "unknown subcommand \"" << argv[1]
              << "\" (expected add, check, del, gc or status)\nRun with --help for more "
                 "information.\n";
    return kUsageError;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsageError;
  }
  return std::nullopt;
}

// The runtime's view of this call: netns, cnitool's container ID, ifname, CNI_ARGS, CAP_ARGS.
absl::StatusOr<RuntimeConf> BuildRuntimeConf(const Options& o) {
  RuntimeConf rt;
  std::error_code ec;
  if (!o.netns.empty()) rt.netns = std::filesystem::absolute(o.netns, ec).string();
  // cnitool's container ID: "cnitool-" + hex of the first 10 bytes of SHA-512(netns path).
  auto digest = cninet::tool::Sha512(rt.netns);
  char hex[21] = {};
  for (int i = 0; i < 10; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  rt.container_id = std::string("cnitool-") + hex;
  rt.ifname = !o.ifname.empty() ? o.ifname : Env("CNI_IFNAME", "eth0");
  if (std::string a = Env("CNI_ARGS"); !a.empty()) {
    for (absl::string_view pair : absl::StrSplit(a, ';')) {
      std::vector<std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
      if (kv.size() != 2 || kv[0].empty() || kv[1].empty()) {
        return CniError(ErrorCode::kInvalidEnvironment,
                        cninet::StrCat("invalid CNI_ARGS pair \"", pair, "\""));
      }
      rt.args.emplace_back(kv[0], kv[1]);
    }
  }
  if (std::string caps = Env("CAP_ARGS"); !caps.empty()) {
    rt.capability_args = nlohmann::json::parse(caps, nullptr, false);
    if (!rt.capability_args.is_object()) {
      return CniError(ErrorCode::kDecodeFailure, "CAP_ARGS must be a JSON object");
    }
  }
  return rt;
}

Runtime MakeRuntime() {
  RuntimeOptions options;
  for (absl::string_view p : absl::StrSplit(Env("CNI_PATH"), ':', absl::SkipEmpty())) {
    options.plugin_paths.emplace_back(p);
  }
  options.cache_dir = Env("CNI_CACHE_DIR", "/var/lib/cni");
  return Runtime(options);
}

// gc --valid values (already checked to be CONTAINERID:IFNAME).
std::vector<GcAttachment> ValidAttachments(const Options& o) {
  std::vector<GcAttachment> out;
  for (const std::string& v : o.valid) {
    size_t colon = v.find(':');
    out.push_back({v.substr(0, colon), v.substr(colon + 1)});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::optional<int> rc = ParseCommandLine(argc, argv, o)) return *rc;
  auto list = cninet::cni::LoadConfList(Env("NETCONFPATH", "/etc/cni/net.d"), o.network);
  if (!list.ok()) return Fail(list.status());
  absl::StatusOr<RuntimeConf> rt = BuildRuntimeConf(o);
  if (!rt.ok()) return Fail(rt.status());
  Runtime runtime = MakeRuntime();
  if (o.op == "add") {
    auto result = runtime.AddNetworkList(*list, *rt);
    if (!result.ok()) return Fail(result.status());
    auto json = result->ToJson();
    if (!json.ok()) return Fail(json.status());
    std::cout << json->dump(4) << std::endl;
    return 0;
  }
  absl::Status s;
  if (o.op == "check") s = runtime.CheckNetworkList(*list, *rt);
  if (o.op == "del") s = runtime.DelNetworkList(*list, *rt);
  if (o.op == "gc") s = runtime.GcNetworkList(*list, ValidAttachments(o));
  if (o.op == "status") s = runtime.StatusNetworkList(*list);
  return s.ok() ? 0 : Fail(s);
}
