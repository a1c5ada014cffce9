#include "cninet/cni/plugin.h"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <iterator>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/cni/error.h"
#include "json_util.h"

extern char** environ;

namespace cninet::cni {
namespace {

constexpr long kNsfsMagic = 0x6e736673;  // NSFS_MAGIC: bind-mounted namespace files.
constexpr long kProcMagic = 0x9fa0;      // /proc/<pid>/ns/net.

struct Requirement {
  const char* var;
  bool add, check, del, gc, status;
};
// Required environment per command (spec section 2). CNI_NETNS is optional for DEL.
constexpr Requirement kRequired[] = {
    {"CNI_CONTAINERID", true, true, true, false, false},
    {"CNI_NETNS", true, true, false, false, false},
    {"CNI_IFNAME", true, true, true, false, false},
    {"CNI_PATH", false, false, false, true, false},
};

bool Requires(const Requirement& r, Command c) {
  switch (c) {
    case Command::kAdd:
      return r.add;
    case Command::kCheck:
      return r.check;
    case Command::kDel:
      return r.del;
    case Command::kGc:
      return r.gc;
    case Command::kStatus:
      return r.status;
    case Command::kVersion:
      return false;
  }
  return false;
}

// ADD/CHECK: CNI_NETNS must name a network namespace other than the plugin's own.
absl::Status CheckNetns(const std::string& path, bool override_check) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return CniError(ErrorCode::kUnknownContainer,
                    cninet::StrCat("network namespace (CNI_NETNS) \"", path, "\" does not exist"));
  }
  struct statfs fs {};
  if (statfs(path.c_str(), &fs) != 0 ||
      (static_cast<long>(fs.f_type) != kNsfsMagic && static_cast<long>(fs.f_type) != kProcMagic)) {
    return CniError(ErrorCode::kInvalidNetns,
                    cninet::StrCat("CNI_NETNS \"", path, "\" is not a network namespace"));
  }
  if (!override_check) {
    struct stat self {};
    if (stat("/proc/self/ns/net", &self) == 0 && self.st_dev == st.st_dev &&
        self.st_ino == st.st_ino) {
      return CniError(ErrorCode::kInvalidNetns,
                      "the plugin's network namespace and CNI_NETNS must not be the same");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Attachment>> ParseValidAttachments(const nlohmann::json& raw) {
  std::vector<Attachment> out;
  auto it = raw.find("cni.dev/valid-attachments");
  if (it == raw.end() || it->is_null()) return out;
  if (!it->is_array()) {
    return internal::TypeError("network config", "cni.dev/valid-attachments", "a list", *it);
  }
  for (const auto& e : *it) {
    if (!e.is_object() || !e.contains("containerID") || !e["containerID"].is_string() ||
        !e.contains("ifname") || !e["ifname"].is_string()) {
      return CniError(ErrorCode::kDecodeFailure,
                      "cni.dev/valid-attachments entries must be {\"containerID\": string, "
                      "\"ifname\": string}");
    }
    out.push_back({e["containerID"].get<std::string>(), e["ifname"].get<std::string>()});
  }
  return out;
}

}  // namespace

std::string_view CommandName(Command c) {
  switch (c) {
    case Command::kAdd:
      return "ADD";
    case Command::kDel:
      return "DEL";
    case Command::kCheck:
      return "CHECK";
    case Command::kGc:
      return "GC";
    case Command::kStatus:
      return "STATUS";
    case Command::kVersion:
      return "VERSION";
  }
  return "";
}

std::optional<Command> ParseCommand(std::string_view text) {
  for (Command c : {Command::kAdd, Command::kDel, Command::kCheck, Command::kGc, Command::kStatus,
                    Command::kVersion}) {
    if (CommandName(c) == text) return c;
  }
  return std::nullopt;
}

std::vector<std::string> CmdArgs::DelegateEnv(Command cmd) const {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.rfind("CNI_", 0) == 0) continue;
    env.emplace_back(kv);
  }
  env.push_back(cninet::StrCat("CNI_COMMAND=", CommandName(cmd)));
  if (!container_id.empty()) env.push_back("CNI_CONTAINERID=" + container_id);
  if (!netns.empty()) env.push_back("CNI_NETNS=" + netns);
  if (!ifname.empty()) env.push_back("CNI_IFNAME=" + ifname);
  if (!args.pairs().empty()) env.push_back("CNI_ARGS=" + args.ToString());
  if (!path.empty()) env.push_back("CNI_PATH=" + cninet::StrJoin(path, ":"));
  return env;
}

absl::Status Plugin::Check(const CmdArgs&) { return absl::OkStatus(); }
absl::Status Plugin::Gc(const CmdArgs&) { return absl::OkStatus(); }
absl::Status Plugin::Status(const CmdArgs&) { return absl::OkStatus(); }

namespace {

struct Invocation {
  std::ostream& out;
  std::ostream& err;
  std::string version;  // For error output.
};

int Fail(Invocation& inv, const absl::Status& status) {
  inv.out << internal::Dump(ErrorToJson(
                 status, inv.version.empty() ? std::string(kCurrentVersion) : inv.version))
          << std::endl;
  return 1;
}

}  // namespace

int RunPlugin(Plugin& plugin, const PluginInfo& info, const PluginIo& io_in) {
  PluginIo io = io_in;
  if (!io.getenv) {
    io.getenv = [](std::string_view name) -> std::optional<std::string> {
      const char* v = std::getenv(std::string(name).c_str());
      if (v == nullptr) return std::nullopt;
      return std::string(v);
    };
  }
  std::istream& in = io.in != nullptr ? *io.in : std::cin;
  Invocation inv{io.out != nullptr ? *io.out : std::cout, io.err != nullptr ? *io.err : std::cerr,
                 ""};
  auto env = [&](const char* name) { return io.getenv(name).value_or(""); };

  std::vector<std::string_view> supported(info.supported_versions.begin(),
                                          info.supported_versions.end());
  if (supported.empty()) supported.assign(SupportedVersions().begin(), SupportedVersions().end());
  auto plugin_supports = [&](const std::string& v) {
    return std::find(supported.begin(), supported.end(), v) != supported.end();
  };

  // 1. The command.
  std::string cmd_text = env("CNI_COMMAND");
  if (cmd_text.empty()) {
    if (!info.about.empty()) {
      inv.err << info.about
              << "\nCNI protocol versions supported: " << cninet::StrJoin(supported, ", ")
              << std::endl;
    }
    return Fail(inv, CniError(ErrorCode::kInvalidEnvironment,
                              "required env variables [CNI_COMMAND] missing"));
  }
  std::optional<Command> cmd = ParseCommand(cmd_text);
  if (!cmd) {
    return Fail(inv,
                CniError(ErrorCode::kInvalidEnvironment,
                         IsValidUtf8(cmd_text) ? cninet::StrCat("unknown CNI_COMMAND: ", cmd_text)
                                               : std::string("unknown CNI_COMMAND (not UTF-8)")));
  }

  // 2. Required variables, all missing ones named at once.
  std::vector<std::string> missing;
  for (const Requirement& r : kRequired) {
    if (Requires(r, *cmd) && env(r.var).empty()) missing.push_back(r.var);
  }
  if (!missing.empty()) {
    return Fail(inv, CniError(ErrorCode::kInvalidEnvironment,
                              cninet::StrCat("required env variables [",
                                             cninet::StrJoin(missing, ","), "] missing")));
  }

  // Every value must be representable in the JSON we emit (errors quote them, results carry them).
  for (const char* var : {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"}) {
    if (!IsValidUtf8(env(var))) {
      return Fail(inv, CniError(ErrorCode::kInvalidEnvironment,
                                cninet::StrCat(var, " is not valid UTF-8")));
    }
  }

  CmdArgs args;
  args.command = *cmd;
  args.container_id = env("CNI_CONTAINERID");
  args.netns = env("CNI_NETNS");
  args.ifname = env("CNI_IFNAME");
  for (absl::string_view p : absl::StrSplit(env("CNI_PATH"), ':', absl::SkipEmpty())) {
    args.path.emplace_back(p);
  }
  if (*cmd == Command::kAdd || *cmd == Command::kCheck || *cmd == Command::kDel) {
    if (absl::Status s = ValidateContainerId(args.container_id); !s.ok()) return Fail(inv, s);
    if (absl::Status s = ValidateInterfaceName(args.ifname); !s.ok()) return Fail(inv, s);
  }
  auto parsed_args = CniArgs::Parse(env("CNI_ARGS"));
  if (!parsed_args.ok()) return Fail(inv, parsed_args.status());
  args.args = std::move(*parsed_args);

  // 3. The configuration on stdin.
  if (*cmd == Command::kVersion) {
    std::string request;
    if (io.in != nullptr || !isatty(STDIN_FILENO)) {
      request.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::string version(kCurrentVersion);
    nlohmann::json j = nlohmann::json::parse(request, nullptr, false);
    if (j.is_object() && j.contains("cniVersion") && j["cniVersion"].is_string()) {
      version = j["cniVersion"].get<std::string>();
    }
    inv.out << VersionResultJson(version, supported) << std::endl;
    return 0;
  }
  args.stdin_data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) return Fail(inv, CniError(ErrorCode::kIoFailure, "error reading from stdin"));
  {
    // Report errors in the request's version whenever it can be read.
    nlohmann::json j = nlohmann::json::parse(args.stdin_data, nullptr, false);
    if (j.is_object() && j.contains("cniVersion") && j["cniVersion"].is_string() &&
        IsSupportedVersion(j["cniVersion"].get<std::string>())) {
      inv.version = j["cniVersion"].get<std::string>();
    }
  }
  auto conf = NetConf::Parse(args.stdin_data);
  if (!conf.ok()) return Fail(inv, conf.status());
  args.conf = std::move(*conf);
  std::string version = args.conf.cni_version.empty() ? "0.1.0" : args.conf.cni_version;
  if (!IsSupportedVersion(version) || !plugin_supports(version)) {
    return Fail(inv, CniError(ErrorCode::kIncompatibleVersion, "incompatible CNI versions",
                              cninet::StrCat("config is \"", version, "\", plugin supports [",
                                             cninet::StrJoin(supported, " "), "]")));
  }
  inv.version = version;

  // 4. Per-command preconditions.
  switch (*cmd) {
    case Command::kCheck:
      if (CompareVersions(version, "0.4.0") < 0) {
        return Fail(
            inv,
            CniError(ErrorCode::kIncompatibleVersion, "config version does not allow CHECK",
                     cninet::StrCat("CHECK needs cniVersion 0.4.0 or later, config is ", version)));
      }
      if (!args.conf.prev_result.has_value()) {
        return Fail(inv, CniError(ErrorCode::kInvalidConfig, "required prevResult missing",
                                  "CHECK must be given the result of ADD as prevResult"));
      }
      break;
    case Command::kGc:
    case Command::kStatus:
      if (CompareVersions(version, "1.1.0") < 0) {
        return Fail(
            inv, CniError(ErrorCode::kIncompatibleVersion,
                          cninet::StrCat("config version does not allow ", cmd_text),
                          cninet::StrCat(cmd_text, " needs cniVersion 1.1.0 or later, config is ",
                                         version)));
      }
      break;
    default:
      break;
  }
  if (*cmd == Command::kAdd || *cmd == Command::kCheck) {
    std::string override_text = absl::AsciiStrToLower(env("CNI_NETNS_OVERRIDE"));
    if (absl::Status s = CheckNetns(args.netns, override_text == "true" || override_text == "1");
        !s.ok()) {
      return Fail(inv, s);
    }
  }
  if (*cmd == Command::kGc) {
    auto valid = ParseValidAttachments(args.conf.raw);
    if (!valid.ok()) return Fail(inv, valid.status());
    args.valid_attachments = std::move(*valid);
  }

  // 5. Dispatch.
  switch (*cmd) {
    case Command::kAdd: {
      absl::StatusOr<Result> result = plugin.Add(args);
      if (!result.ok()) return Fail(inv, result.status());
      result->cni_version = version;
      absl::StatusOr<std::string> text = result->ToString(version);
      if (!text.ok()) return Fail(inv, text.status());
      inv.out << *text << std::endl;
      return 0;
    }
    case Command::kDel:
      if (absl::Status s = plugin.Del(args); !s.ok()) return Fail(inv, s);
      return 0;
    case Command::kCheck:
      if (absl::Status s = plugin.Check(args); !s.ok()) return Fail(inv, s);
      return 0;
    case Command::kGc:
      if (absl::Status s = plugin.Gc(args); !s.ok()) return Fail(inv, s);
      return 0;
    case Command::kStatus:
      if (absl::Status s = plugin.Status(args); !s.ok()) return Fail(inv, s);
      return 0;
    case Command::kVersion:
      break;
  }
  return 0;
}

int PluginMain(Plugin& plugin, const PluginInfo& info) {
  std::ios::sync_with_stdio(false);
  int rc = RunPlugin(plugin, info, PluginIo{});
  std::cout.flush();
  return rc;
}

}  // namespace cninet::cni
