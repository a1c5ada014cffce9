#include "runtimes.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace cninet::chain_testing {
namespace {

namespace fs = std::filesystem;
using cninet::testing::CommandResult;

constexpr char kPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string ReadProcFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Mount points from /proc/self/mountinfo (field 5), with \040-style escapes decoded.
std::vector<std::string> MountPoints() {
  std::vector<std::string> out;
  std::istringstream in(ReadProcFile("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, devno, root, mnt;
    f >> id >> parent >> devno >> root >> mnt;
    std::string decoded;
    for (size_t i = 0; i < mnt.size(); ++i) {
      if (mnt[i] == '\\' && i + 3 < mnt.size()) {
        decoded.push_back(static_cast<char>(std::stoi(mnt.substr(i + 1, 3), nullptr, 8)));
        i += 3;
      } else {
        decoded.push_back(mnt[i]);
      }
    }
    out.push_back(decoded);
  }
  return out;
}

}  // namespace

absl::Status MakeBusyboxRootfs(const std::string& dir) {
  std::error_code ec;
  for (const char* sub : {"bin", "etc", "tmp", "proc", "sys", "dev", "run"})
    fs::create_directories(fs::path(dir) / sub, ec);
  if (ec) return absl::InternalError("mkdir " + dir + ": " + ec.message());
  fs::copy_file("/bin/busybox", fs::path(dir) / "bin/busybox", fs::copy_options::overwrite_existing,
                ec);
  if (ec)
    return absl::FailedPreconditionError("copy /bin/busybox (install busybox-static): " +
                                         ec.message());
  CommandResult list = cninet::testing::Run({"/bin/busybox", "--list"});
  if (!list.ok()) return absl::FailedPreconditionError("busybox --list failed: " + list.err);
  std::istringstream in(list.out);
  for (std::string applet; in >> applet;) {
    if (applet == "busybox") continue;
    fs::path link = fs::path(dir) / "bin" / applet;
    if (!fs::exists(link, ec)) fs::create_symlink("busybox", link, ec);
  }
  cninet::testing::WriteFile(dir + "/etc/passwd", "root:x:0:0:root:/:/bin/sh\n");
  cninet::testing::WriteFile(dir + "/etc/group", "root:x:0:\n");
  return absl::OkStatus();
}

int KillProcessesMentioning(const std::string& marker) {
  int killed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid == getpid()) continue;
    std::string cmdline = ReadProcFile("/proc/" + name + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(marker) != std::string::npos && kill(pid, SIGKILL) == 0) ++killed;
  }
  return killed;
}

int UnmountBelow(const std::string& dir) {
  std::vector<std::string> targets;
  for (const auto& m : MountPoints()) {
    if (m == dir || m.rfind(dir + "/", 0) == 0) targets.push_back(m);
  }
  std::sort(targets.begin(), targets.end(),
            [](const auto& a, const auto& b) { return a.size() > b.size(); });
  int n = 0;
  for (const auto& t : targets) n += umount2(t.c_str(), MNT_DETACH) == 0;
  return n;
}

// ---- Podman ----

Podman::Podman(std::string node_netns, std::string network_dir)
    : node_netns_(std::move(node_netns)), network_dir_(std::move(network_dir)) {
  std::string conf =
      "[containers]\n"
      "default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n"
      "[engine]\n"
      "runtime = \"runc\"\n"
      "cgroup_manager = \"cgroupfs\"\n"
      "events_logger = \"file\"\n"
      "lock_type = \"file\"\n"
      "[network]\n"
      "network_backend = \"cni\"\n"
      "cni_plugin_dirs = [\"" CNINET_PLUGIN_DIR
      "\", \"/usr/lib/cni\"]\n"
      "network_config_dir = \"" +
      network_dir_ + "\"\n";
  cninet::testing::WriteFile(dir_.Sub("containers.conf"), conf);
}

Podman::~Podman() {
  Run({"rm", "--all", "--force", "--time", "0"}, std::chrono::seconds(60));
  // Anything podman could not stop (conmon mentions our directories on its command line).
  KillProcessesMentioning(dir_.path());
  UnmountBelow(dir_.path());
}

CommandResult Podman::Run(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {"nsenter", "--net=/run/netns/" + node_netns_, "podman", "--root",
                                   dir_.Sub("root"), "--runroot", dir_.Sub("runroot"), "--tmpdir",
                                   dir_.Sub("tmp"), "--storage-driver", "vfs",
                                   // runc's state under the temp dir too (default /run/runc).
                                   "--runtime-flag", "root=" + dir_.Sub("runc")};
  argv.insert(argv.end(), args.begin(), args.end());
  return cninet::testing::Run(
      argv, {}, {kPath, "HOME=/root", "CONTAINERS_CONF=" + dir_.Sub("containers.conf")}, timeout);
}

absl::Status Podman::ImportBusybox() {
  std::string rootfs = dir_.Sub("busybox-rootfs");
  if (absl::Status s = MakeBusyboxRootfs(rootfs); !s.ok()) return s;
  std::string tar = dir_.Sub("busybox.tar");
  CommandResult t = cninet::testing::Run({"tar", "-C", rootfs, "-cf", tar, "."});
  if (!t.ok()) return absl::InternalError("tar: " + t.err);
  CommandResult r = Run({"import", tar, Image()});
  if (!r.ok()) return absl::InternalError("podman import: " + r.err);
  return absl::OkStatus();
}

std::string Podman::Ipv4(const std::string& container) {
  CommandResult r = Run({"inspect", "--format",
                         "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container});
  std::string ip = r.out;
  while (!ip.empty() && (ip.back() == '\n' || ip.back() == ' ')) ip.pop_back();
  return ip;
}

// ---- containerd ----

Containerd::Containerd(std::string node_netns, std::string cni_conf_dir)
    : node_netns_(std::move(node_netns)), cni_conf_dir_(std::move(cni_conf_dir)) {
  // Only what ctr needs: no CRI (it would load its own CNI setup), no remote snapshotters.
  std::string conf =
      "version = 2\n"
      "root = \"" +
      dir_.Sub("root") +
      "\"\n"
      "state = \"" +
      dir_.Sub("state") +
      "\"\n"
      "disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.internal.v1.opt\",\n"
      "  \"io.containerd.tracing.processor.v1.otlp\", \"io.containerd.snapshotter.v1.aufs\",\n"
      "  \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.devmapper\",\n"
      "  \"io.containerd.snapshotter.v1.zfs\"]\n"
      "[grpc]\n"
      "  address = \"" +
      dir_.Sub("containerd.sock") +
      "\"\n"
      "[ttrpc]\n"
      "  address = \"" +
      dir_.Sub("containerd.sock.ttrpc") + "\"\n";
  cninet::testing::WriteFile(dir_.Sub("config.toml"), conf);
  std::error_code ec;
  fs::create_directories(cache_dir(), ec);
  fs::create_directories(dir_.Sub("cni-bin"), ec);
  // ctr looks for plugins by name in /opt/cni/bin: the build's plugins, linked one by one.
  for (const auto& e : fs::directory_iterator(CNINET_PLUGIN_DIR, ec)) {
    fs::create_symlink(e.path(), fs::path(dir_.Sub("cni-bin")) / e.path().filename(), ec);
  }
  EXPECT_TRUE(MakeBusyboxRootfs(rootfs()).ok());
}

Containerd::~Containerd() {
  if (pid_ > 0) {
    for (const auto& id : ids_) Remove(id);
    kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Shims left behind name our socket on their command line.
  KillProcessesMentioning(dir_.path());
  UnmountBelow(dir_.path());
  // containerd 1.6 puts shim sockets in /run/containerd/s whatever its configuration says; the
  // directories are left empty when the shims are gone. rmdir fails harmlessly while anything
  // (another test's shim, a system containerd) still uses them, and containerd recreates them.
  rmdir("/run/containerd/s");
  rmdir("/run/containerd");
}

absl::Status Containerd::Start() {
  std::string log = dir_.Sub("containerd.log");
  pid_ = fork();
  if (pid_ < 0) return absl::InternalError(std::string("fork: ") + strerror(errno));
  if (pid_ == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) dup2(devnull, 0);
    setpgid(0, 0);
    std::string net = "--net=/run/netns/" + node_netns_;
    std::string config = dir_.Sub("config.toml");
    execlp("nsenter", "nsenter", net.c_str(), "containerd", "--config", config.c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError("containerd exited: " + Log());
    }
    CommandResult v =
        cninet::testing::Run({"ctr", "--address", dir_.Sub("containerd.sock"), "version"}, {}, {},
                             std::chrono::seconds(5));
    if (v.ok()) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError("containerd did not come up: " + Log());
}

CommandResult Containerd::Ctr(const std::vector<std::string>& args,
                              std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {CNINET_SOURCE_DIR "/tests/e2e/chain/ctr-in-node.sh",
                                   node_netns_,
                                   cni_conf_dir_,
                                   dir_.Sub("cni-bin"),
                                   cache_dir(),
                                   "--",
                                   "--address",
                                   dir_.Sub("containerd.sock")};
  std::vector<std::string> a = args;
  if (!a.empty() && a[0] == "run") {
    // ctr's defaults would put FIFOs in /run/containerd/fifo and runc's state in
    // /run/containerd/runc: keep both in the test's directory.
    a.insert(a.begin() + 1, {"--fifo-dir", dir_.Sub("fifo"), "--runc-root", dir_.Sub("runc")});
  }
  argv.insert(argv.end(), a.begin(), a.end());
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    // Remember container IDs so the destructor removes them (run ... ROOTFS|IMAGE ID ...).
    if (args[0] == "run" && (args[i] == "--rootfs")) {
      if (i + 2 < args.size()) ids_.push_back(args[i + 2]);
      break;
    }
  }
  return cninet::testing::Run(argv, {}, {kPath, "HOME=/root"}, timeout);
}

void Containerd::Remove(const std::string& id) {
  auto ctr = [&](std::vector<std::string> a) {
    std::vector<std::string> argv = {"ctr", "--address", dir_.Sub("containerd.sock")};
    argv.insert(argv.end(), a.begin(), a.end());
    return cninet::testing::Run(argv, {}, {}, std::chrono::seconds(30));
  };
  ctr({"task", "kill", "--signal", "SIGKILL", id});
  for (int i = 0; i < 30; ++i) {
    if (ctr({"task", "delete", id}).ok()) break;
    if (ctr({"task", "ls", "-q"}).out.find(id) == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ctr({"container", "delete", id});
}

std::string Containerd::Log() const {
  return cninet::testing::ReadFile(dir_.Sub("containerd.log"));
}

}  // namespace cninet::chain_testing
