#include "cninet/cni/plugin.h"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
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

absl::StatusOr<std::vector<GcAttachment>> ParseValidAttachments(const nlohmann::json& raw) {
  std::vector<GcAttachment> out;
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
  const PluginIo& io;
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  std::vector<std::string_view> supported;  // What this plugin accepts.
  std::string version;                      // For error output; empty: kCurrentVersion.

  std::string Env(const char* name) const { return io.getenv(name).value_or(""); }
  bool Supports(std::string_view v) const {
    return std::find(supported.begin(), supported.end(), v) != supported.end();
  }
};

int Fail(Invocation& inv, const absl::Status& status) {
  inv.out << internal::Dump(ErrorToJson(
                 status, inv.version.empty() ? std::string(kCurrentVersion) : inv.version))
          << std::endl;
  return 1;
}

PluginIo WithDefaults(const PluginIo& io_in) {
  PluginIo io = io_in;
  if (!io.getenv) {
    io.getenv = [](std::string_view name) -> std::optional<std::string> {
      const char* v = std::getenv(std::string(name).c_str());
      if (v == nullptr) return std::nullopt;
      return std::string(v);
    };
  }
  return io;
}

// The value of the first `"cniVersion": "..."` in `text`, for requests that do not decode.
std::string ScanVersion(std::string_view text) {
  constexpr std::string_view kKey = "\"cniVersion\"";
  size_t pos = text.find(kKey);
  if (pos == std::string_view::npos) return "";
  pos += kKey.size();
  auto skip_space = [&] {
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
  };
  skip_space();
  if (pos >= text.size() || text[pos] != ':') return "";
  ++pos;
  skip_space();
  if (pos >= text.size() || text[pos] != '"') return "";
  size_t close = text.find('"', pos + 1);
  if (close == std::string_view::npos) return "";
  return std::string(text.substr(pos + 1, close - pos - 1));
}

// The request's cniVersion if stdin shows a supported one (even in JSON that does not decode),
// else "" (errors then use kCurrentVersion).
std::string RequestVersion(std::string_view stdin_data) {
  std::string version;
  nlohmann::json j = nlohmann::json::parse(stdin_data, nullptr, false);
  if (j.is_object()) {
    auto it = j.find("cniVersion");
    if (it != j.end() && it->is_string()) version = it->get<std::string>();
  } else {
    version = ScanVersion(stdin_data);
  }
  return IsSupportedVersion(version) ? version : "";
}

// CNI_COMMAND, parsed; without it, prints `info.about` for the person running the plugin.
absl::StatusOr<Command> CommandFromEnv(const Invocation& inv, const PluginInfo& info) {
  std::string text = inv.Env("CNI_COMMAND");
  if (text.empty()) {
    if (!info.about.empty()) {
      inv.err << info.about
              << "\nCNI protocol versions supported: " << cninet::StrJoin(inv.supported, ", ")
              << std::endl;
    }
    return CniError(ErrorCode::kInvalidEnvironment, "required env variables [CNI_COMMAND] missing");
  }
  std::optional<Command> cmd = ParseCommand(text);
  if (!cmd) {
    return CniError(ErrorCode::kInvalidEnvironment,
                    IsValidUtf8(text) ? cninet::StrCat("unknown CNI_COMMAND: ", text)
                                      : std::string("unknown CNI_COMMAND (not UTF-8)"));
  }
  return *cmd;
}

// Reads the whole of stdin unless that would wait on a terminal for a command that needs no
// configuration (VERSION, or no command at all).
absl::StatusOr<std::string> ReadStdin(const Invocation& inv, const absl::StatusOr<Command>& cmd) {
  bool needs_conf = cmd.ok() && *cmd != Command::kVersion;
  std::string data;
  if (needs_conf || inv.io.in != nullptr || !isatty(STDIN_FILENO)) {
    data.assign(std::istreambuf_iterator<char>(inv.in), std::istreambuf_iterator<char>());
  }
  if (inv.in.bad()) return CniError(ErrorCode::kIoFailure, "error reading from stdin");
  return data;
}

// The CNI_* variables: required ones present (all missing ones named at once), every value
// valid UTF-8 (errors quote them, results carry them), IDs and CNI_ARGS well formed.
absl::StatusOr<CmdArgs> ArgsFromEnv(const Invocation& inv, Command cmd) {
  std::vector<std::string> missing;
  for (const Requirement& r : kRequired) {
    if (Requires(r, cmd) && inv.Env(r.var).empty()) missing.push_back(r.var);
  }
  if (!missing.empty()) {
    return CniError(
        ErrorCode::kInvalidEnvironment,
        cninet::StrCat("required env variables [", cninet::StrJoin(missing, ","), "] missing"));
  }
  for (const char* var : {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"}) {
    if (!IsValidUtf8(inv.Env(var))) {
      return CniError(ErrorCode::kInvalidEnvironment, cninet::StrCat(var, " is not valid UTF-8"));
    }
  }
  CmdArgs args;
  args.command = cmd;
  args.container_id = inv.Env("CNI_CONTAINERID");
  args.netns = inv.Env("CNI_NETNS");
  args.ifname = inv.Env("CNI_IFNAME");
  for (absl::string_view p : absl::StrSplit(inv.Env("CNI_PATH"), ':', absl::SkipEmpty())) {
    args.path.emplace_back(p);
  }
  if (cmd == Command::kAdd || cmd == Command::kCheck || cmd == Command::kDel) {
    CNINET_RETURN_IF_ERROR(ValidateContainerId(args.container_id));
    CNINET_RETURN_IF_ERROR(ValidateInterfaceName(args.ifname));
  }
  CNINET_ASSIGN_OR_RETURN(args.args, CniArgs::Parse(inv.Env("CNI_ARGS")));
  return args;
}

// Decodes args.stdin_data into args.conf; returns the request's version (a supported one).
absl::StatusOr<std::string> ParseConf(const Invocation& inv, CmdArgs& args) {
  CNINET_ASSIGN_OR_RETURN(args.conf, NetConf::Parse(args.stdin_data));
  std::string version = args.conf.cni_version.empty() ? "0.1.0" : args.conf.cni_version;
  if (!IsSupportedVersion(version) || !inv.Supports(version)) {
    return CniError(ErrorCode::kIncompatibleVersion, "incompatible CNI versions",
                    cninet::StrCat("config is \"", version, "\", plugin supports [",
                                   cninet::StrJoin(inv.supported, " "), "]"));
  }
  return version;
}

// What the command needs of the configuration's version and of prevResult.
absl::Status CheckVersionAllows(const CmdArgs& args, std::string_view version) {
  std::string_view name = CommandName(args.command);
  switch (args.command) {
    case Command::kCheck:
      if (CompareVersions(version, "0.4.0") < 0) {
        return CniError(
            ErrorCode::kIncompatibleVersion, "config version does not allow CHECK",
            cninet::StrCat("CHECK needs cniVersion 0.4.0 or later, config is ", version));
      }
      if (!args.conf.prev_result.has_value()) {
        return CniError(ErrorCode::kInvalidConfig, "required prevResult missing",
                        "CHECK must be given the result of ADD as prevResult");
      }
      return absl::OkStatus();
    case Command::kGc:
    case Command::kStatus:
      if (CompareVersions(version, "1.1.0") < 0) {
        return CniError(
            ErrorCode::kIncompatibleVersion, cninet::StrCat("config version does not allow ", name),
            cninet::StrCat(name, " needs cniVersion 1.1.0 or later, config is ", version));
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// Per-command preconditions beyond the version: the netns of ADD/CHECK (unless the plugin
// never enters it) and GC's valid attachments (stored into args).
absl::Status CheckPreconditions(const Invocation& inv, const PluginInfo& info, CmdArgs& args,
                                std::string_view version) {
  CNINET_RETURN_IF_ERROR(CheckVersionAllows(args, version));
  if (args.command == Command::kAdd || args.command == Command::kCheck) {
    std::string override_text = absl::AsciiStrToLower(inv.Env("CNI_NETNS_OVERRIDE"));
    if (info.needs_netns) {
      CNINET_RETURN_IF_ERROR(
          CheckNetns(args.netns, override_text == "true" || override_text == "1"));
    }
  }
  if (args.command == Command::kGc) {
    CNINET_ASSIGN_OR_RETURN(args.valid_attachments, ParseValidAttachments(args.conf.raw));
  }
  return absl::OkStatus();
}

// VERSION: the supported versions, reported in the request's cniVersion (any string).
int PrintVersion(Invocation& inv, std::string_view stdin_data) {
  std::string version(kCurrentVersion);
  nlohmann::json j = nlohmann::json::parse(stdin_data, nullptr, false);
  if (j.is_object() && j.contains("cniVersion") && j["cniVersion"].is_string()) {
    version = j["cniVersion"].get<std::string>();
  }
  inv.out << VersionResultJson(version, inv.supported) << std::endl;
  return 0;
}

// Calls the plugin; ADD prints its result in the request's version.
int Dispatch(Invocation& inv, Plugin& plugin, const CmdArgs& args) {
  absl::Status status;
  switch (args.command) {
    case Command::kAdd: {
      absl::StatusOr<Result> result = plugin.Add(args);
      if (!result.ok()) return Fail(inv, result.status());
      result->cni_version = inv.version;
      absl::StatusOr<std::string> text = result->ToString(inv.version);
      if (!text.ok()) return Fail(inv, text.status());
      inv.out << *text << std::endl;
      return 0;
    }
    case Command::kDel:
      status = plugin.Del(args);
      break;
    case Command::kCheck:
      status = plugin.Check(args);
      break;
    case Command::kGc:
      status = plugin.Gc(args);
      break;
    case Command::kStatus:
      status = plugin.Status(args);
      break;
    case Command::kVersion:
      break;
  }
  return status.ok() ? 0 : Fail(inv, status);
}

}  // namespace

int RunPlugin(Plugin& plugin, const PluginInfo& info, const PluginIo& io_in) {
  PluginIo io = WithDefaults(io_in);
  Invocation inv{io,
                 io.in != nullptr ? *io.in : std::cin,
                 io.out != nullptr ? *io.out : std::cout,
                 io.err != nullptr ? *io.err : std::cerr,
                 {},
                 ""};
  inv.supported.assign(info.supported_versions.begin(), info.supported_versions.end());
  if (inv.supported.empty()) {
    inv.supported.assign(SupportedVersions().begin(), SupportedVersions().end());
  }
  absl::StatusOr<Command> cmd = CommandFromEnv(inv, info);
  absl::StatusOr<std::string> stdin_data = ReadStdin(inv, cmd);
  if (stdin_data.ok()) inv.version = RequestVersion(*stdin_data);  // Errors from here on.
  if (!cmd.ok()) return Fail(inv, cmd.status());
  if (!stdin_data.ok()) return Fail(inv, stdin_data.status());
  if (*cmd == Command::kVersion) return PrintVersion(inv, *stdin_data);
  absl::StatusOr<CmdArgs> args = ArgsFromEnv(inv, *cmd);
  if (!args.ok()) return Fail(inv, args.status());
  args->stdin_data = std::move(*stdin_data);
  absl::StatusOr<std::string> version = ParseConf(inv, *args);
  if (!version.ok()) return Fail(inv, version.status());
  inv.version = *version;
  if (absl::Status s = CheckPreconditions(inv, info, *args, *version); !s.ok()) {
    return Fail(inv, s);
  }
  return Dispatch(inv, plugin, *args);
}

int PluginMain(Plugin& plugin, const PluginInfo& info) {
  std::ios::sync_with_stdio(false);
  int rc = RunPlugin(plugin, info, PluginIo{});
  std::cout.flush();
  return rc;
}

}  // namespace cninet::cni
