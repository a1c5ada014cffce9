// The agent's Prometheus endpoint (issue 17, "Must show" 3): a real cninet-agent serving
// --metrics-address, a real Prometheus server (Debian's `prometheus`) started by the test on
// 127.0.0.1 scraping it every second, and the test asking Prometheus's HTTP API for the drop
// counter a connection it made caused (an isolated namespace refusing another namespace's pod)
// and for the reconcile latency histogram.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster_testing.h"
#include "cninet/agent/state.h"
#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/line_server.h"
#include "testing/test_util.h"

namespace cninet::agent::testing {
namespace {

using ::cninet::testing::FreeLoopbackPort;
using ::cninet::testing::HttpGet;
using ::cninet::testing::TempDir;
using ::testing::HasSubstr;

constexpr uint16_t kPodPort = 8080;

// A Prometheus server on 127.0.0.1 scraping `targets` every second; stopped when destroyed.
class PrometheusServer {
 public:
  PrometheusServer(const std::string& dir, const std::vector<int>& targets) {
    if (access("/usr/bin/prometheus", X_OK) != 0) {
      status_ = absl::FailedPreconditionError(
          "/usr/bin/prometheus not found (Debian package prometheus)");
      return;
    }
    absl::StatusOr<int> port = FreeLoopbackPort();
    if (!port.ok()) {
      status_ = port.status();
      return;
    }
    port_ = *port;
    std::string cfg = dir + "/prometheus.yml";
    {
      std::ofstream out(cfg);
      out << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
          << "scrape_configs:\n  - job_name: cninet\n    static_configs:\n      - targets: [";
      for (size_t i = 0; i < targets.size(); ++i)
        out << (i ? ", " : "") << "\"127.0.0.1:" << targets[i] << "\"";
      out << "]\n";
    }
    std::string log = dir + "/prometheus.log";
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execl("/usr/bin/prometheus", "prometheus", ("--config.file=" + cfg).c_str(),
            ("--storage.tsdb.path=" + dir + "/data").c_str(),
            StrCat("--web.listen-address=127.0.0.1:", port_).c_str(), "--log.level=warn",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = HttpGet(port_, "/-/ready");
      if (r.ok() && r->code == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    status_ = absl::UnavailableError(StrCat("prometheus not ready in 30 s; see ", log));
  }
  ~PrometheusServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st = 0;
      for (int i = 0; i < 100 && waitpid(pid_, &st, WNOHANG) == 0; ++i) usleep(50000);
      if (waitpid(pid_, &st, WNOHANG) == 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &st, 0);
      }
    }
  }
  const absl::Status& status() const { return status_; }

  // The instant query's result vector (the "result" array of /api/v1/query).
  absl::StatusOr<nlohmann::json> Query(const std::string& promql) {
    std::string q;
    for (char c : promql) {
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.') {
        q += c;
      } else {
        char buf[4];
        std::snprintf(buf, sizeof(buf), "%%%02X", static_cast<unsigned char>(c));
        q += buf;
      }
    }
    CNINET_ASSIGN_OR_RETURN(auto r, HttpGet(port_, "/api/v1/query?query=" + q));
    nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
    if (r.code != 200 || j.is_discarded() || j.value("status", "") != "success")
      return absl::InternalError(StrCat("query ", promql, ": HTTP ", r.code, " ", r.body));
    return j["data"]["result"];
  }

  // Polls `promql` until its first sample's value satisfies `pred` (up to `timeout`).
  absl::StatusOr<double> WaitValue(const std::string& promql, std::function<bool(double)> pred,
                                   std::chrono::seconds timeout = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string last = "no sample";
    while (std::chrono::steady_clock::now() < deadline) {
      auto res = Query(promql);
      if (res.ok() && !res->empty()) {
        double v = std::stod((*res)[0]["value"][1].get<std::string>());
        if (pred(v)) return v;
        last = StrCat("value ", v);
      } else if (!res.ok()) {
        last = std::string(res.status().message());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return absl::DeadlineExceededError(StrCat(promql, ": ", last));
  }

 private:
  absl::Status status_;
  pid_t pid_ = -1;
  int port_ = 0;
};

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CNINET_REQUIRE_ROOT();
    ClusterOptions o;
    o.nodes = 1;
    o.metrics = true;
    cluster_ = std::make_unique<Cluster>(o);
    ASSERT_TRUE(cluster_->status().ok()) << cluster_->status();
  }
  std::unique_ptr<Cluster> cluster_;
  TempDir dir_;
};

TEST_F(MetricsTest, PrometheusScrapesTheDropItCausedAndTheReconcileLatency) {
  Node& node = cluster_->nodes()[0];
  // The endpoint itself: text format, the agent's own health.
  auto direct = HttpGet(node.metrics_port, "/metrics");
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(direct->code, 200);
  EXPECT_THAT(direct->body, HasSubstr("# TYPE cninet_datapath_packets_total counter"));
  EXPECT_THAT(direct->body, HasSubstr("# TYPE cninet_reconcile_duration_seconds histogram"));
  EXPECT_THAT(direct->body, HasSubstr("cninet_agent_ready 1"));

  PrometheusServer prom(dir_.path(), {node.metrics_port});
  ASSERT_TRUE(prom.status().ok()) << prom.status();
  ASSERT_OK(prom.WaitValue("up{job=\"cninet\"}", [](double v) { return v == 1; }).status());

  // An isolated namespace's pod refuses a pod of another namespace: drop_isolated on the node.
  absl::StatusOr<int> iso = cluster_->AddPod(0, "iso-a", "iso");
  ASSERT_OK(iso);
  absl::StatusOr<int> other = cluster_->AddPod(0, "other-a", "default");
  ASSERT_OK(other);
  ::cninet::testing::LineServer server(
      ::cninet::testing::LineServerOptions{.netns_path = cluster_->pods()[*iso].ns->path(),
                                           .port = kPodPort,
                                           .name = "iso-a",
                                           .echo_line = false});
  ASSERT_OK(server.status());
  v1::Namespace ns;
  ns.set_name("iso");
  ns.set_isolated(true);
  ASSERT_OK(PutObject(cluster_->store(), ns).status());
  ASSERT_OK(cluster_->WaitStatus(
      0, [](const api::AgentStatus& s) { return s.policy().isolated_namespaces() == 1; }));
  const std::string query = "cninet_datapath_packets_total{reason=\"drop_isolated\"}";
  auto before = prom.Query(query);
  ASSERT_OK(before.status());
  const double had = before->empty() ? 0 : std::stod((*before)[0]["value"][1].get<std::string>());
  for (int i = 0; i < 3; ++i) {
    auto who = WhoAnswers(cluster_->pods()[*other].ns->path(), cluster_->pods()[*iso].ip, kPodPort);
    EXPECT_FALSE(who.ok()) << "the isolated pod answered: " << *who;
  }
  auto got = prom.WaitValue(query, [&](double v) { return v >= had + 3; });
  ASSERT_OK(got.status());
  // Its labels say it is a drop.
  auto series = prom.Query(query);
  ASSERT_OK(series.status());
  ASSERT_FALSE(series->empty());
  EXPECT_EQ((*series)[0]["metric"].value("drop", ""), "true");

  // The reconcile latency histogram: whole rounds observed, with buckets.
  ASSERT_OK(prom.WaitValue("cninet_reconcile_duration_seconds_count{pass=\"round\"}",
                           [](double v) { return v >= 1; })
                .status());
  auto buckets = prom.Query("cninet_reconcile_duration_seconds_bucket{pass=\"round\"}");
  ASSERT_OK(buckets.status());
  EXPECT_GE(buckets->size(), 10u) << buckets->dump();
  ASSERT_OK(
      prom.WaitValue(
              "histogram_quantile(0.5, cninet_reconcile_duration_seconds_bucket{pass=\"round\"})",
              [](double v) { return v > 0 && v < 10; })
          .status());
}

}  // namespace
}  // namespace cninet::agent::testing
