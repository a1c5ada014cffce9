// Crash safety: ADD processes SIGKILLed at random moments must leave a readable store (every
// lease record complete), and a CNI 1.1 GC with the attachments that did complete must leave
// exactly their leases.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "cninet/base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipam_e2e.h"

namespace cninet::ipam::e2e {
namespace {

using ::testing::IsEmpty;

struct Outcome {
  bool killed = false;  // Died of our SIGKILL.
  int exit_code = -1;   // When it exited by itself.
  std::string out;
};

// Starts `plugin` directly inside network namespace `netns_path` (setns before exec, so the
// process we kill is the plugin itself), kills it after `delay` unless it finished, reaps it.
Outcome RunAndMaybeKill(const std::string& netns_path, const std::string& plugin,
                        const std::vector<std::string>& env, const std::string& conf_file,
                        std::chrono::microseconds delay) {
  Outcome o;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return o;
  pid_t pid = fork();
  if (pid == 0) {
    int ns = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) _exit(126);
    int in = open(conf_file.c_str(), O_RDONLY);
    int null = open("/dev/null", O_WRONLY);
    dup2(in, 0);
    dup2(out[1], 1);
    dup2(null, 2);
    std::vector<char*> argv = {const_cast<char*>(plugin.c_str()), nullptr};
    std::vector<char*> envp;
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    execve(plugin.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  // Wait up to `delay` for it to finish on its own, then kill it wherever it is.
  int status = 0;
  bool reaped = false;
  auto deadline = std::chrono::steady_clock::now() + delay;
  while (!reaped && std::chrono::steady_clock::now() < deadline) {
    reaped = waitpid(pid, &status, WNOHANG) == pid;
    if (!reaped) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  if (!reaped) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof(buf))) > 0;)
    o.out.append(buf, static_cast<size_t>(n));
  close(out[0]);
  o.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
  return o;
}

using CrashTest = IpamE2eTest;

TEST_F(CrashTest, SigkillAtRandomMomentsThenGc) {
  constexpr int kMinKills = 200;
  constexpr int kMaxAttempts = 3000;
  std::string conf = Conf(R"("ranges":[[{"subnet":"10.60.0.0/16"}],[{"subnet":"fd60::/64"}]])");
  std::string conf_file = tmp_.Sub("conf.json");
  cninet::testing::WriteFile(conf_file, conf);
  auto env_for = [&](const std::string& id) {
    return std::vector<std::string>{"CNI_COMMAND=ADD", "CNI_CONTAINERID=" + id,
                                    "CNI_NETNS=" + pod_.path(), "CNI_IFNAME=eth0",
                                    "CNI_PATH=/usr/lib/cni"};
  };

  // How long an ADD takes here, so the kill delays cover its whole life.
  auto t0 = std::chrono::steady_clock::now();
  std::map<std::string, std::vector<std::string>> completed;  // container -> addresses
  for (int i = 0; i < 5; ++i) {
    std::string id = cninet::StrCat("warm", i);
    Outcome o =
        RunAndMaybeKill(node_.path(), OurPlugin(), env_for(id), conf_file, std::chrono::seconds(5));
    ASSERT_EQ(o.exit_code, 0) << o.out;
    completed[id] = Addresses(o.out);
  }
  auto add_time = (std::chrono::steady_clock::now() - t0) / 5;
  int64_t max_delay_us = std::max<int64_t>(
      200, std::chrono::duration_cast<std::chrono::microseconds>(add_time).count() * 6 / 5);

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int64_t> delay(0, max_delay_us);
  std::set<std::string> attempted;
  int kills = 0;
  for (int i = 0; i < kMaxAttempts && kills < kMinKills; ++i) {
    std::string id = cninet::StrCat("k", i);
    attempted.insert(id);
    Outcome o = RunAndMaybeKill(node_.path(), OurPlugin(), env_for(id), conf_file,
                                std::chrono::microseconds(delay(rng)));
    if (o.killed) {
      ++kills;
    } else {
      ASSERT_EQ(o.exit_code, 0) << id << ": " << o.out;
      completed[id] = Addresses(o.out);
      ASSERT_EQ(completed[id].size(), 2u) << o.out;
    }
  }
  ASSERT_GE(kills, kMinKills) << "the plugin finished too fast to be killed " << kMinKills
                              << " times";
  RecordProperty("kills", kills);
  RecordProperty("completed", static_cast<int>(completed.size()));

  // 1. The store is readable: every lease record is complete and names an attempted container.
  std::map<std::string, std::string> owner_of;
  for (const std::string& name : LeaseFiles(NetDir())) {
    std::string content = cninet::testing::ReadFile(NetDir() + "/" + name);
    size_t br = content.find("\r\n");
    ASSERT_NE(br, std::string::npos) << name << " holds a torn record: \"" << content << "\"";
    std::string id = content.substr(0, br);
    EXPECT_EQ(content.substr(br + 2), "eth0") << name;
    EXPECT_TRUE(attempted.count(id) || completed.count(id)) << name << " owned by unknown " << id;
    owner_of[name] = id;
  }
  // Some kills must have landed after a reservation (leases of killed ADDs exist), or the loop
  // did not exercise the write path at all.
  int killed_leases = 0;
  for (const auto& [name, id] : owner_of) killed_leases += completed.count(id) == 0 ? 1 : 0;
  RecordProperty("leases_of_killed_adds", killed_leases);
  EXPECT_GT(killed_leases, 0) << "no kill landed between reservation and exit";
  // Every completed ADD still holds exactly what it was told.
  for (const auto& [id, addrs] : completed) {
    for (const std::string& a : addrs) EXPECT_EQ(owner_of[a.substr(0, a.find('/'))], id) << a;
  }

  // 2. GC with the live attachments (those whose ADD completed).
  nlohmann::json valid = nlohmann::json::array();
  for (const auto& [id, addrs] : completed)
    valid.push_back({{"containerID", id}, {"ifname", "eth0"}});
  nlohmann::json gc_conf = nlohmann::json::parse(
      Conf(R"("ranges":[[{"subnet":"10.60.0.0/16"}],[{"subnet":"fd60::/64"}]])", "1.1.0"));
  gc_conf["cni.dev/valid-attachments"] = valid;
  auto gc = Call(OurPlugin(), "GC", "", gc_conf.dump());
  ASSERT_TRUE(gc.ok()) << gc.out << gc.err;

  std::set<std::string> expected;
  for (const auto& [id, addrs] : completed) {
    for (const std::string& a : addrs) expected.insert(a.substr(0, a.find('/')));
  }
  auto files = LeaseFiles(NetDir());
  EXPECT_EQ(std::set<std::string>(files.begin(), files.end()), expected);
  // No debris of killed writers survives GC.
  for (const auto& [path, v] : Snapshot(NetDir())) EXPECT_NE(path.rfind("/.", 0), 0u) << path;

  // 3. The reference plugin still works on the store and hands out no duplicate.
  auto ref = Call(kRefPlugin, "ADD", "after-crash", conf);
  ASSERT_TRUE(ref.ok()) << ref.out;
  for (const std::string& a : Addresses(ref.out)) {
    EXPECT_EQ(expected.count(a.substr(0, a.find('/'))), 0u) << a;
  }
}

}  // namespace
}  // namespace cninet::ipam::e2e
