// nat_path_bench: per-packet cost of cninet's NAT path through BPF_PROG_TEST_RUN with `repeat`,
// on the datapath's own packet fixtures (tests/bpf/fixtures), as ns/packet, Mpps and the ratio
// to a floor - the empty tc program (Datapath::TestRunFloor) on the same packet - measured in the
// same run.
//
// Method (see bench/README.md): one benchmark iteration = three interleaved BPF_PROG_TEST_RUN
// batches of R runs each:
//   f  the datapath's empty program, run directly                      -> floor (ns/run)
//   h  the harness (harness.bpf.c) tail-calling its own empty program  -> harness cost
//   m  the harness tail-calling the datapath program under test
// The harness restores the fixture packet before every run (and writes a fresh source port for
// new-flow cases), so every run of m does the full work of its case. ns/packet = m - h + f,
// i.e. the program's cost on top of an empty program plus the empty program's own cost, and
// floor_ratio = ns/packet / f. Counters report the medians over iterations. After each new-flow
// batch the entries it created (conntrack, NAT) are deleted outside the timed region, so the
// table fill stays where the case puts it. Each case checks the datapath's own counters
// afterwards (every run took the expected path) and fails loudly otherwise.
//
// IPv6 (issue 14): every case also runs as its IPv6 twin ("<name>/ipv6", right after the IPv4
// cases of the same environment) on the IPv6 rows of the fixture table (StandardIpv6Fixtures) in
// a dual-stack datapath, with its own floor measured in the same iterations. The output compares
// the two in floor multiples (v6/v4, target: within 1.2x): counters v4_floor_ratio and
// v6_over_v4, a table on stdout and in --table_out. No timing is asserted anywhere.
//
// Socket LB (issue 15): SocketLB/established is a packet of a connection socket LB balanced
// (addressed to the backend by the connect hook, so a plain tracked flow for from-pod, with its
// cn_sock_flows record), run right after ClusterIP/established in the same environment; its note
// and the counter socklb_over_clusterip give the ratio of the two in floor multiples.
//
// Extra flags (before the Google Benchmark ones):
//   --quick              tiny configuration (smoke test): fewer cases, 1 and 1000 services
//   --repeat_hot=N       runs per batch for established/reply cases (default 20000)
//   --repeat_new=N       runs per batch for new-flow cases (default 4000)
//   --table_out=FILE     Markdown table of every case (bench/results/nat_path.md)
//   --plot_out=FILE      gnuplot data: ns/packet by service count (bench/results/nat_path.dat)
// Progress (the case being set up and measured) goes to stderr.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"
#include "cninet/datapath/abi.h"
#include "cninet/datapath/datapath.h"
#include "cninet/datapath/datapath_maps.h"
#include "cninet/datapath/monitor.h"
#include "cninet/datapath/types.h"
#include "common/bench_flags.h"
#include "common/bench_main.h"
#include "fixtures.h"
#include "harness.h"

namespace cninet::bench {
namespace {

using datapath::Backend;
using datapath::Datapath;
using datapath::Hook;
using datapath::Service;
namespace dt = datapath::testing;

// ---------------------------------------------------------------------------------------------
// Options and progress.

struct Options {
  bool quick = false;
  uint32_t repeat_hot = 20000;
  uint32_t repeat_new = 4000;
  std::string table_out;
  std::string plot_out;
};
Options g_opt;

template <typename... Args>
void Progress(const Args&... args) {
  std::string line = StrCat("[nat_path] ", args...);
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

cni::IPAddress Ip(std::string_view s) { return *cni::IPAddress::Parse(s); }
cn_addr Net(std::string_view s) { return datapath::ToAbiAddr(Ip(s)); }
// The IPv6 address `n` above `base` (added to its last 32 bits).
cni::IPAddress V6Plus(std::string_view base, uint32_t n) {
  std::array<uint8_t, 16> b = Ip(base).bytes();
  const uint32_t low =
      (uint32_t{b[12]} << 24 | uint32_t{b[13]} << 16 | uint32_t{b[14]} << 8 | b[15]) + n;
  for (int i = 0; i < 4; ++i) b[12 + i] = static_cast<uint8_t>(low >> (24 - 8 * i));
  return cni::IPAddress::FromBytes(b.data(), b.size());
}
// IPv4 `v4_base` + n, or IPv6 `v6_base` + n: the same synthetic address in either family.
cni::IPAddress Plus(bool v6, uint32_t v4_base, std::string_view v6_base, uint32_t n) {
  return v6 ? V6Plus(v6_base, n) : cni::IPAddress::V4(v4_base + n);
}

// ---------------------------------------------------------------------------------------------
// Environment: one loaded datapath with services, conntrack fill and NAT occupancy, reused by
// consecutive cases with the same spec.

struct EnvSpec {
  uint32_t services = 1;     // total services; 1 = the fixture's web service alone
  uint32_t backends = 0;     // 0: the fixture's backends (B1, B2; M=251); else N backends, M=16381
  uint32_t ct_fill_pct = 0;  // conntrack map filled with unrelated live flows
  uint32_t nat_occupancy_pct = 0;  // SNAT ports to the fixture's outside server already taken
  bool standard = false;           // the fixture's 8 standard services (NodePort, SNAT cases)
  bool ct_hash = false;            // ConntrackMapType::kHash instead of the default LRU hash
  // IPv6 twin (issue 14): a dual-stack datapath (StandardDualStackConfig + both standard setups);
  // the service under test, fillers, backends, conntrack fill and SNAT occupancy are IPv6.
  bool ipv6 = false;
  // Flow monitor (issue 17): one new flow in N sent to the ring buffer (0 = off, drops only); a
  // FlowMonitor drains it between iterations (outside the measured time).
  uint16_t monitor_sample = 0;
  friend bool operator==(const EnvSpec&, const EnvSpec&) = default;
  std::string ToString() const {
    return StrCat("services=", services, " backends=", backends == 0 ? 2 : backends,
                  " ct_fill=", ct_fill_pct, "% nat_occupancy=", nat_occupancy_pct, "%",
                  ct_hash ? " conntrack=hash" : "", ipv6 ? " ipv6" : "",
                  monitor_sample ? StrCat(" monitor=1/", monitor_sample) : "");
  }
};

constexpr uint32_t kCtSize = 262144;  // the default conntrack size
constexpr uint32_t kFillerIdBase = 100;
constexpr uint32_t kFillerIdBaseV6 = 1000;  // above the IPv6 standard services (101..108)

// The id of the service under test: the fixtures' web service, IPv4 (1) or IPv6 (101).
uint32_t WebId(bool v6) { return v6 ? dt::topo6::kServiceIdOffset + 1 : 1; }

datapath::DatapathConfig BenchConfig(const EnvSpec& spec) {
  datapath::DatapathConfig c = spec.ipv6 ? dt::StandardDualStackConfig() : dt::StandardConfig();
  if (spec.ct_hash) c.conntrack_map_type = datapath::ConntrackMapType::kHash;
  c.map_sizes.conntrack = kCtSize;
  c.map_sizes.nat = 131072;
  c.map_sizes.services = 131072;
  c.map_sizes.service_slots = 131072;
  c.map_sizes.backends = 262144;
  c.map_sizes.affinity = 65536;
  c.map_sizes.endpoints = 4096;
  c.monitor_sample = spec.monitor_sample;
  // One batch of new flows at 1-in-1 (80 B each); other cases keep the default ring.
  if (spec.monitor_sample) c.map_sizes.monitor_ring_bytes = 1u << 24;
  return c;
}

struct Env {
  EnvSpec spec;
  std::unique_ptr<Datapath> dp;
  std::unique_ptr<Harness> harness;
  std::unique_ptr<Steps> steps;  // loaded on first use (breakdown cases)
  Service web;                   // the service under test (id 1) as programmed
  bool fixture_backends = true;
};

std::unique_ptr<Env> g_env;

// Filler service i: VIP 10.100.0.0 + i (IPv6: fd00:10:100:: + i), TCP 80, two backends,
// Maglev M=251.
Service Filler(uint32_t i, bool v6) {
  Service s;
  s.id = (v6 ? kFillerIdBaseV6 : kFillerIdBase) + i;
  s.frontends.push_back(datapath::Frontend{Plus(v6, 10u << 24 | 100u << 16, "fd00:10:100::", i), 80,
                                           datapath::Protocol::kTcp,
                                           datapath::FrontendKind::kClusterIP});
  for (uint32_t b = 0; b < 2; ++b) {
    s.backends.push_back(
        Backend{Plus(v6, 10u << 24 | 246u << 16, "fd00:10:246::", (i * 2 + b) & 0xffff),
                static_cast<uint16_t>(8080 + b)});
  }
  s.maglev_size = 251;
  return s;
}

absl::Status FillConntrack(Datapath& dp, uint32_t pct, bool v6) {
  const uint32_t want = static_cast<uint32_t>(uint64_t{kCtSize} * pct / 100);
  std::mt19937 rng(42);
  const uint32_t now = datapath::MonotonicSeconds();
  std::vector<cn_tuple> keys;
  std::vector<cn_ct_entry> vals;
  uint32_t done = 0;
  while (done < want) {
    keys.clear();
    vals.clear();
    for (uint32_t i = 0; i < 8192 && done + i < want; ++i) {
      uint32_t n = done + i;
      cn_tuple k{};
      // Unique per n: client 172.16.0.0/12 + n (IPv6: fd00:172:16:: + n), port from n; never a
      // fixture address.
      k.saddr = datapath::ToAbiAddr(Plus(v6, 172u << 24 | 16u << 16, "fd00:172:16::", n & 0xfffff));
      k.daddr =
          datapath::ToAbiAddr(Plus(v6, 10u << 24 | 97u << 16, "fd00:10:97::", rng() & 0xffff));
      k.sport = htons(static_cast<uint16_t>(1024 + (n >> 20) * 4096 + rng() % 4096));
      k.dport = htons(static_cast<uint16_t>(1 + rng() % 60000));
      k.proto = 6;
      cn_ct_entry e{};
      e.packets = 1;
      e.created_s = now;
      e.expires_s = now + 21600;
      e.nat_addr = k.daddr;
      e.nat_port = k.dport;
      e.flags = CN_CT_F_SEEN_NON_SYN;
      keys.push_back(k);
      vals.push_back(e);
    }
    CNINET_RETURN_IF_ERROR(dp.maps()->conntrack.UpdateBatch(keys, vals));
    done += static_cast<uint32_t>(keys.size());
  }
  CNINET_ASSIGN_OR_RETURN(datapath::ConntrackStats st, dp.conntrack().Stats());
  if (st.entries + 64 < want) {
    return absl::InternalError(
        StrCat("conntrack fill: ", st.entries, " entries after writing ", want));
  }
  return absl::OkStatus();
}

// Takes `pct` % of the SNAT port range for flows to the fixture's outside server (kOutside:443
// TCP, of topo or topo6), as live mapping pairs of other pods.
absl::Status OccupyNatPorts(Datapath& dp, uint32_t pct, bool v6) {
  const auto& cfg = dp.config();
  std::vector<uint16_t> ports;
  for (uint32_t p = cfg.nat_port_min; p <= cfg.nat_port_max; ++p)
    ports.push_back(static_cast<uint16_t>(p));
  std::mt19937 rng(7);
  std::shuffle(ports.begin(), ports.end(), rng);
  ports.resize(ports.size() * pct / 100);
  return dt::OccupySnatPorts(dp, *cni::IPAddress::Parse(v6 ? dt::topo6::kNode : dt::topo::kNode),
                             *cni::IPAddress::Parse(v6 ? dt::topo6::kOutside : dt::topo::kOutside),
                             ports, 21600);
}

// Clears the port index bits of deleted ingress mappings (what NatTable::Gc does for expired
// ones), so that a batch's own flows do not stay in the occupancy of the next batch.
absl::Status ReleaseIndexBits(datapath::DatapathMaps& maps, const std::vector<cn_tuple>& nat_del) {
  for (const cn_tuple& in : nat_del) {
    if (in.pad[0] != CN_NAT_INGRESS) continue;
    uint64_t bit = 0;
    const cn_nat_ports_key k = datapath::NatPortIndexKey(in, &bit);
    auto bits = maps.nat_ports.Lookup(k);
    if (!bits.ok()) continue;
    const uint64_t left = *bits & ~bit;
    CNINET_RETURN_IF_ERROR(left ? maps.nat_ports.Update(k, left) : maps.nat_ports.Delete(k));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Env>> BuildEnv(const EnvSpec& spec) {
  auto env = std::make_unique<Env>();
  env->spec = spec;
  Progress("  set up datapath: ", spec.ToString());
  CNINET_ASSIGN_OR_RETURN(env->dp, Datapath::Create(BenchConfig(spec)));
  Datapath& dp = *env->dp;
  CNINET_RETURN_IF_ERROR(dt::ApplyStandardSetup(dp));
  if (spec.ipv6) CNINET_RETURN_IF_ERROR(dt::ApplyStandardIpv6Setup(dp));
  const uint32_t web_id = WebId(spec.ipv6);
  if (!spec.standard) {
    std::vector<Service> all = dt::StandardServices();
    if (spec.ipv6) {
      for (Service& s : dt::StandardIpv6Services()) all.push_back(std::move(s));
    }
    for (const Service& s : all)
      if (s.id != web_id) CNINET_RETURN_IF_ERROR(dp.services().Delete(s.id));
  }
  // The IPv6 standard environment keeps the IPv4 services too (the dual-stack fixture setup).
  const uint32_t present = spec.standard ? (spec.ipv6 ? 16 : 8) : 1;
  if (spec.services > present) {
    const uint32_t fillers = spec.services - present;
    std::vector<Service> chunk;
    for (uint32_t i = 0; i < fillers; ++i) {
      chunk.push_back(Filler(i, spec.ipv6));
      if (chunk.size() == 4096 || i + 1 == fillers) {
        CNINET_RETURN_IF_ERROR(dp.services().UpsertBatch(chunk));
        chunk.clear();
        if ((i + 1) % 20480 == 0 || i + 1 == fillers)
          Progress("  programmed ", present + i + 1, "/", spec.services, " services");
      }
    }
  }
  CNINET_ASSIGN_OR_RETURN(env->web, dp.services().Get(web_id));
  if (spec.backends != 0) {
    Service web = env->web;
    web.backends.clear();
    for (uint32_t b = 0; b < spec.backends; ++b) {
      // B1, B2 first (local endpoints), then 10.244.3.0 + b (IPv6: fd00:10:244:3:: + b).
      if (b == 0) {
        web.backends.push_back(Backend{Ip(spec.ipv6 ? dt::topo6::kB1 : dt::topo::kB1), 8080});
      } else if (b == 1) {
        web.backends.push_back(Backend{Ip(spec.ipv6 ? dt::topo6::kB2 : dt::topo::kB2), 8080});
      } else {
        web.backends.push_back(
            Backend{Plus(spec.ipv6, 10u << 24 | 244u << 16 | 3u << 8, "fd00:10:244:3::", b), 8080});
      }
    }
    web.maglev_size = 16381;
    CNINET_RETURN_IF_ERROR(dp.services().Upsert(web));
    env->web = web;
    env->fixture_backends = false;
  }
  if (spec.ct_fill_pct > 0) {
    Progress("  filling conntrack to ", spec.ct_fill_pct, "% of ", kCtSize);
    CNINET_RETURN_IF_ERROR(FillConntrack(dp, spec.ct_fill_pct, spec.ipv6));
  }
  if (spec.nat_occupancy_pct > 0) {
    Progress("  occupying ", spec.nat_occupancy_pct, "% of the SNAT ports to ",
             spec.ipv6 ? dt::topo6::kOutside : dt::topo::kOutside, " port 443");
    CNINET_RETURN_IF_ERROR(OccupyNatPorts(dp, spec.nat_occupancy_pct, spec.ipv6));
  }
  CNINET_ASSIGN_OR_RETURN(env->harness, Harness::Create(dp));
  return env;
}

absl::StatusOr<Env*> GetEnv(const EnvSpec& spec) {
  if (g_env && g_env->spec == spec) return g_env.get();
  g_env.reset();  // harness first, then the datapath (member order)
  CNINET_ASSIGN_OR_RETURN(g_env, BuildEnv(spec));
  return g_env.get();
}

// ---------------------------------------------------------------------------------------------
// Cases.

enum class Kind {
  kFloor,            // the empty program itself (direct)
  kEstablished,      // ClusterIP: conntrack hit + DNAT
  kReply,            // ClusterIP reply: conntrack hit + reverse DNAT
  kNew,              // ClusterIP new flow: CT miss + service + Maglev + CT create + DNAT
  kSnatNew,          // egress to outside: SNAT port allocation + NAT pair
  kSnatEstablished,  // egress: SNAT mapping hit
  kNodePortRemoteNew,
  kNodePortRemoteEstablished,
  // A socket-LB'd connection (bpf/README.md "Socket-level load balancing"): the connect hook
  // addressed it to a backend, so from-pod sees a plain flow (no VIP, no DNAT): conntrack hit,
  // no rewrite. Its cn_sock_flows record is in place, as sock_ops writes it.
  kSocketLbEstablished,
  kPlainDirect,   // validation: conntrack hit, no rewrite, run directly with repeat
  kPlainHarness,  // validation: the same through the harness
};

struct CaseSpec {
  std::string group;  // table section
  std::string name;   // benchmark name
  Kind kind;
  EnvSpec env;
  std::string step;       // breakdown: steps.bpf.c program run instead of the datapath's
  std::string label;      // breakdown: the row's text in the table
  std::string step_base;  // breakdown: the case (name) this step adds to; "" = the floor
};

struct CaseResult {
  CaseSpec spec;
  bool ok = false;
  std::string error;
  double ns = 0, floor_ns = 0, harness_ns = 0, ratio = 0;
  double drop_pct = 0, retries_per_flow = 0;
  uint64_t runs = 0;
};
std::vector<CaseResult> g_results;  // in order of first completion; reruns overwrite

// IPv6 cases are named and labelled after their IPv4 twin (issue 14: IPv6 within 1.2x of IPv4).
constexpr char kIpv6Suffix[] = "/ipv6";
constexpr double kIpv6Target = 1.2;

const CaseResult* FindByName(std::string_view name) {
  for (const auto& r : g_results)
    if (r.spec.name == name) return &r;
  return nullptr;
}

// The IPv4 twin of an IPv6 case, when it was measured successfully.
const CaseResult* V4Twin(const CaseSpec& v6) {
  if (!v6.env.ipv6 || !v6.name.ends_with(kIpv6Suffix)) return nullptr;
  const CaseResult* r =
      FindByName(std::string_view(v6.name).substr(0, v6.name.size() - strlen(kIpv6Suffix)));
  return r && r->ok && r->ratio > 0 ? r : nullptr;
}

// The same case with the monitor's sampling off (measured earlier in the same run).
const CaseResult* MonitorOffTwin(const CaseSpec& cs) {
  if (!cs.env.monitor_sample) return nullptr;
  const std::string tag = StrCat("/monitor_sample:", cs.env.monitor_sample);
  std::string off = cs.name;
  const size_t at = off.find(tag);
  if (at == std::string::npos) return nullptr;
  off.erase(at, tag.size());
  const CaseResult* r = FindByName(off);
  return r && r->ok && r->ratio > 0 ? r : nullptr;
}

// The packets of a socket-LB'd connection: the client's SYN and ACK, addressed by the client to
// backend B1:8080 directly (the connect hook rewrote the destination before any packet existed;
// source port 44001, used by no fixture). The SYN's `before` writes the cn_sock_flows record
// sock_ops writes at TCP_CONNECT_CB (from-pod reads it for a new plain TCP flow: the service
// mark for remote backends; B1 is a local endpoint, so it marks nothing). Names follow the
// fixture table ("v6_" twins).
std::vector<dt::PacketFixture> SocketLbFixtures(bool v6) {
  const std::string client = v6 ? dt::topo6::kClient : dt::topo::kClient;
  const std::string backend = v6 ? dt::topo6::kB1 : dt::topo::kB1;
  constexpr uint16_t kSport = 44001, kDport = 8080;
  auto tcp = [&](uint8_t flags) {
    dt::PacketBuilder b;
    if (v6) {
      b.Ipv6(client, backend);
    } else {
      b.Ipv4(client, backend);
    }
    return b.Tcp(kSport, kDport, flags).Build();
  };
  const std::string prefix = v6 ? "v6_" : "";
  const uint32_t svc_id = WebId(v6);
  std::vector<dt::PacketFixture> out(2);
  dt::PacketFixture& syn = out[0];
  syn.name = prefix + "socklb_syn";
  syn.description = "socket LB: the client's SYN, already addressed to the backend";
  syn.input = tcp(dt::kSyn);
  syn.expected_output = syn.input;
  syn.expected_reason = CN_R_PASS;
  syn.before = [client, backend, svc_id](Datapath& dp) {
    cn_tuple t{};
    t.saddr = Net(client);
    t.daddr = Net(backend);
    t.sport = htons(kSport);
    t.dport = htons(kDport);
    t.proto = 6;
    cn_sock_flow f{};
    f.svc_id = svc_id;
    f.created_s = datapath::MonotonicSeconds();
    return dp.maps()->sock_flows.Update(t, f);
  };
  dt::PacketFixture& ack = out[1];
  ack.name = prefix + "socklb_established";
  ack.description = "socket LB: the client's ACK, a conntrack hit on the plain flow";
  ack.input = tcp(dt::kAck);
  ack.expected_output = ack.input;
  ack.expected_reason = CN_R_PASS;
  return out;
}

bool IsNewFlow(Kind k) {
  return k == Kind::kNew || k == Kind::kSnatNew || k == Kind::kNodePortRemoteNew;
}

const dt::PacketFixture& Fixture(const std::vector<dt::PacketFixture>& all, std::string_view name) {
  for (const auto& f : all)
    if (f.name == name) return f;
  std::fprintf(stderr, "no fixture %.*s\n", static_cast<int>(name.size()), name.data());
  std::abort();
}

// The measured fixture of each case and the fixtures run before it (state it needs).
struct CasePlan {
  std::string measured;
  std::vector<std::string> prime;
  std::optional<SportSequence> sport;
};

CasePlan PlanForV4(Kind k) {
  switch (k) {
    case Kind::kFloor:
      return {"clusterip_established", {}, std::nullopt};
    case Kind::kEstablished:
      return {"clusterip_established", {"clusterip_syn", "clusterip_reply"}, std::nullopt};
    case Kind::kReply:
      return {"clusterip_reply", {"clusterip_syn"}, std::nullopt};
    case Kind::kNew:
      // Client ports 1024..39999: never the fixtures' own flows (40001, 43001, ...).
      return {"clusterip_syn", {}, SportSequence{1024, 38976}};
    case Kind::kSnatNew:
      // Ports across the whole SNAT range, so "keep the original port" meets the occupancy;
      // scattered (stride 7919), so a batch's own kept ports do not form one long cluster that
      // the linear probing of other flows would have to cross.
      return {"snat_egress", {}, SportSequence{32768, 32768, 7919}};
    case Kind::kSnatEstablished:
      return {"snat_egress_established", {"snat_egress", "snat_reply"}, std::nullopt};
    case Kind::kNodePortRemoteNew:
      // Client ports below the SNAT range: the SNAT to the node address probes from a random
      // start for every flow (the batch's own claims are then scattered, as with many clients).
      return {"nodeport_remote", {}, SportSequence{1024, 31744}};
    case Kind::kNodePortRemoteEstablished:
      return {"nodeport_remote_established",
              {"nodeport_remote", "nodeport_remote_reply"},
              std::nullopt};
    case Kind::kSocketLbEstablished:
      return {"socklb_established", {"socklb_syn"}, std::nullopt};
    case Kind::kPlainDirect:
    case Kind::kPlainHarness:
      return {"plain_egress_tracked", {"plain_egress_tracked"}, std::nullopt};
  }
  return {};
}

// The plan of `k` for either family: IPv6 cases use the rows' IPv6 twins (StandardIpv6Fixtures),
// same ports, same path.
CasePlan PlanFor(Kind k, bool v6) {
  CasePlan plan = PlanForV4(k);
  if (v6) {
    plan.measured = StrCat("v6_", plan.measured);
    for (std::string& p : plan.prime) p = StrCat("v6_", p);
  }
  return plan;
}

// Counter deltas a case must produce per measured run.
struct Expect {
  std::vector<uint32_t> per_run;  // each must grow by exactly `runs`
};
Expect ExpectFor(Kind k) {
  switch (k) {
    case Kind::kEstablished:
    case Kind::kNodePortRemoteEstablished:
      return {{CN_R_DNAT, CN_R_CT_HIT}};
    case Kind::kReply:
      return {{CN_R_REV_DNAT, CN_R_CT_HIT}};
    case Kind::kNew:
      return {{CN_R_DNAT, CN_R_CT_NEW}};
    case Kind::kNodePortRemoteNew:
      return {{CN_R_DNAT, CN_R_CT_NEW, CN_R_NAT_NEW}};
    case Kind::kSnatEstablished:
      return {{CN_R_SNAT}};
    case Kind::kSocketLbEstablished:
    case Kind::kPlainDirect:
    case Kind::kPlainHarness:
      return {{CN_R_PASS, CN_R_CT_HIT}};
    case Kind::kSnatNew:  // SNAT + DROP_NAT_NO_PORT == runs, checked separately
    case Kind::kFloor:
      return {};
  }
  return {};
}

absl::StatusOr<std::map<uint32_t, uint64_t>> ReadCounters(Datapath& dp) {
  CNINET_ASSIGN_OR_RETURN(auto all, dp.counters().Read());
  std::map<uint32_t, uint64_t> out;
  for (const auto& c : all) out[c.reason] = c.packets;
  return out;
}

// Deletes the conntrack and NAT entries the new flows of ports [first, first+count) created.
absl::Status CleanupNewFlows(Env& env, Kind kind, const CasePlan& plan, uint32_t first,
                             uint32_t count, const std::vector<dt::PacketFixture>& fixtures) {
  const dt::PacketFixture& f = Fixture(fixtures, plan.measured);
  const uint8_t* ip = f.input.data() + 14;
  const bool v6 = (ip[0] >> 4) == 6;  // IPv6 fixtures carry no extension headers here
  const size_t alen = v6 ? 16 : 4;
  cn_tuple fwd{};
  fwd.saddr = datapath::ToAbiAddr(cni::IPAddress::FromBytes(ip + (v6 ? 8 : 12), alen));
  fwd.daddr = datapath::ToAbiAddr(cni::IPAddress::FromBytes(ip + (v6 ? 24 : 16), alen));
  std::memcpy(&fwd.dport, ip + (v6 ? 40 : 20) + 2, 2);
  fwd.proto = v6 ? ip[6] : ip[9];
  auto& maps = *env.dp->maps();
  std::vector<cn_tuple> ct_del, nat_del;
  uint32_t found = 0;
  for (uint32_t i = 0; i < count; ++i) {
    fwd.sport = htons(plan.sport->Port(first + i));
    if (kind == Kind::kSnatNew) {
      cn_tuple eg = fwd;
      eg.pad[0] = CN_NAT_EGRESS;
      auto e = maps.nat.Lookup(eg);
      if (!e.ok()) continue;  // dropped: no free port
      ++found;
      cn_tuple in{};
      in.saddr = fwd.daddr;
      in.daddr = e->to_addr;
      in.sport = fwd.dport;
      in.dport = e->to_port;
      in.proto = fwd.proto;
      in.pad[0] = CN_NAT_INGRESS;
      nat_del.push_back(eg);
      nat_del.push_back(in);
      continue;
    }
    auto e = maps.conntrack.Lookup(fwd);
    if (!e.ok()) continue;
    ++found;
    cn_tuple rt{};
    rt.saddr = e->nat_addr;
    rt.daddr = fwd.saddr;
    rt.sport = e->nat_port;
    rt.dport = fwd.sport;
    rt.proto = fwd.proto;
    ct_del.push_back(fwd);
    ct_del.push_back(rt);
    if (kind == Kind::kNodePortRemoteNew) {
      // SNAT of the DNATed packet: (client -> backend) egress, (backend -> node:port) ingress.
      cn_tuple eg{};
      eg.saddr = fwd.saddr;
      eg.daddr = e->nat_addr;
      eg.sport = fwd.sport;
      eg.dport = e->nat_port;
      eg.proto = fwd.proto;
      eg.pad[0] = CN_NAT_EGRESS;
      if (auto n = maps.nat.Lookup(eg); n.ok()) {
        cn_tuple in{};
        in.saddr = e->nat_addr;
        in.daddr = n->to_addr;
        in.sport = e->nat_port;
        in.dport = n->to_port;
        in.proto = fwd.proto;
        in.pad[0] = CN_NAT_INGRESS;
        nat_del.push_back(eg);
        nat_del.push_back(in);
      }
    }
  }
  if (kind != Kind::kSnatNew && found != count) {
    return absl::InternalError(StrCat("expected ", count, " new conntrack flows, found ", found,
                                      " (some runs did not create a flow)"));
  }
  CNINET_RETURN_IF_ERROR(maps.conntrack.DeleteBatch(ct_del).status());
  CNINET_RETURN_IF_ERROR(maps.nat.DeleteBatch(nat_del).status());
  return ReleaseIndexBits(maps, nat_del);
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Runs the fixtures a case needs before its measured packet (checking their output when the
// service is the fixture's own).
absl::Status Prime(Env& env, const CasePlan& plan, const std::vector<dt::PacketFixture>& fixtures) {
  for (const auto& name : plan.prime) {
    const dt::PacketFixture& f = Fixture(fixtures, name);
    if (env.fixture_backends) {
      CNINET_RETURN_IF_ERROR(dt::RunFixture(*env.dp, f));
    } else {
      CNINET_ASSIGN_OR_RETURN(datapath::TestRunResult r, env.dp->TestRun(f.hook, f.input));
      if (r.retval != f.expected_verdict)
        return absl::InternalError(StrCat(name, ": verdict ", r.retval));
    }
  }
  return absl::OkStatus();
}

const CaseResult* ClusterIpTwin(const CaseSpec& s);
std::string KindName(Kind k);

void RunCase(benchmark::State& state, const CaseSpec& cs) {
  Progress("measuring ", cs.name);
  CaseResult result;
  result.spec = cs;
  auto fail = [&](const absl::Status& s) {
    std::string msg = StrCat(cs.name, ": ", s.ToString());
    Progress("ERROR ", msg);
    result.error = msg;
    state.SkipWithError(msg.c_str());
    auto it = std::find_if(g_results.begin(), g_results.end(),
                           [&](const CaseResult& r) { return r.spec.name == cs.name; });
    if (it != g_results.end())
      *it = result;
    else
      g_results.push_back(result);
  };
  absl::StatusOr<Env*> envp = GetEnv(cs.env);
  if (!envp.ok()) return fail(envp.status());
  Env& env = **envp;
  Datapath& dp = *env.dp;
  Harness& h = *env.harness;
  std::vector<dt::PacketFixture> fixtures =
      cs.env.ipv6 ? dt::StandardIpv6Fixtures() : dt::StandardFixtures();
  for (dt::PacketFixture& f : SocketLbFixtures(cs.env.ipv6)) fixtures.push_back(std::move(f));
  const CasePlan plan = PlanFor(cs.kind, cs.env.ipv6);
  const dt::PacketFixture& mf = Fixture(fixtures, plan.measured);
  // SNAT batches stay small: each new flow takes a port, and a batch must not move the
  // occupancy it measures (256 of 32768 ports: +0.8 %).
  const uint32_t repeat = cs.kind == Kind::kSnatNew ? std::min<uint32_t>(g_opt.repeat_new, 256)
                          : IsNewFlow(cs.kind)      ? g_opt.repeat_new
                                                    : g_opt.repeat_hot;

  if (absl::Status s = Prime(env, plan, fixtures); !s.ok()) return fail(s);
  if (!cs.step.empty()) {
    if (!env.steps) {
      auto steps = Steps::Load(dp);
      if (!steps.ok()) return fail(steps.status());
      env.steps = std::move(*steps);
    }
    auto fd = env.steps->ProgramFd(cs.step);
    if (!fd.ok()) return fail(fd.status());
    if (absl::Status s = h.SetTargetFd(*fd); !s.ok()) return fail(s);
  } else if (cs.kind != Kind::kFloor) {
    if (absl::Status s = h.SetTarget(mf.hook); !s.ok()) return fail(s);
  }
  // Breakdown prefixes before the conntrack create leave no flows behind.
  const bool creates_flows = plan.sport && (cs.step.empty() || cs.step == "nb_new_ct_create" ||
                                            cs.step == "nb_snat_alloc");
  if (absl::Status s = h.SetPacket(mf.input, plan.sport); !s.ok()) return fail(s);

  // One checked run through the harness: the verdict, and the fixture's exact output bytes
  // where the flow is the fixture's own (fixed source port, the fixture's backends).
  uint64_t measured_runs = 0;
  auto counters_before = ReadCounters(dp);
  if (!counters_before.ok()) return fail(counters_before.status());
  if (cs.kind != Kind::kFloor && cs.kind != Kind::kPlainDirect) {
    auto first = h.Counter();
    auto r = h.Run(Slot::kTarget, 1);
    if (!r.ok()) return fail(r.status());
    ++measured_runs;
    if (r->retval != mf.expected_verdict &&
        !(cs.kind == Kind::kSnatNew && r->retval == dt::kTcShot))
      return fail(
          absl::InternalError(StrCat("verdict ", r->retval, ", want ", mf.expected_verdict)));
    if (cs.step.empty() && !plan.sport && env.fixture_backends && mf.expected_output &&
        r->packet != *mf.expected_output)
      return fail(absl::InternalError(StrCat("output differs from the fixture\n",
                                             dt::HexDiff(r->packet, *mf.expected_output))));
    if (creates_flows) {
      if (absl::Status s = CleanupNewFlows(env, cs.kind, plan, *first, 1, fixtures); !s.ok())
        return fail(s);
    }
  } else if (cs.kind == Kind::kPlainDirect) {
    auto r = dp.TestRun(mf.hook, mf.input, 1);
    if (!r.ok()) return fail(r.status());
    ++measured_runs;
    if (r->packet != *mf.expected_output) return fail(absl::InternalError("plain flow rewritten"));
  }

  std::unique_ptr<datapath::FlowMonitor> monitor;
  uint64_t monitor_events = 0;
  if (cs.env.monitor_sample) {
    auto m =
        datapath::FlowMonitor::Open(dp, {}, [&](const datapath::FlowEvent&) { ++monitor_events; });
    if (!m.ok()) return fail(m.status());
    monitor = std::move(*m);
    // The checked run's event (the ring buffer kept it).
    if (auto d = monitor->Drain(); !d.ok()) return fail(d.status());
  }
  std::vector<double> nets, floors, harnesses;
  for (auto _ : state) {
    auto hr = h.Run(Slot::kEmpty, repeat);
    auto fr = dp.TestRunFloor(mf.input, repeat);
    if (!hr.ok()) return fail(hr.status());
    if (!fr.ok()) return fail(fr.status());
    const double f = fr->duration_ns, hh = hr->duration_ns;
    double net = f;
    if (cs.kind == Kind::kPlainDirect) {
      auto mr = dp.TestRun(mf.hook, mf.input, repeat);
      if (!mr.ok()) return fail(mr.status());
      net = mr->duration_ns;
      measured_runs += repeat;
    } else if (cs.kind != Kind::kFloor) {
      auto first = h.Counter();
      if (!first.ok()) return fail(first.status());
      auto mr = h.Run(Slot::kTarget, repeat);
      if (!mr.ok()) return fail(mr.status());
      // (SNAT new flows may be dropped for want of a port: counted and checked below.)
      if (cs.kind != Kind::kSnatNew && mr->retval != mf.expected_verdict) {
        return fail(
            absl::InternalError(StrCat("verdict ", mr->retval, ", want ", mf.expected_verdict)));
      }
      net = mr->duration_ns - hh + f;
      measured_runs += repeat;
      if (creates_flows) {  // outside the measured (kernel) time
        absl::Status s = CleanupNewFlows(env, cs.kind, plan, *first, repeat, fixtures);
        if (!s.ok()) return fail(s);
      }
    }
    if (monitor) {  // outside the measured (kernel) time
      if (auto d = monitor->Drain(); !d.ok()) return fail(d.status());
    }
    state.SetIterationTime(std::max(net, 0.1) * repeat * 1e-9);
    nets.push_back(net);
    floors.push_back(f);
    harnesses.push_back(hh);
  }

  // Every measured run took the case's path.
  auto counters_after = ReadCounters(dp);
  if (!counters_after.ok()) return fail(counters_after.status());
  auto delta = [&](uint32_t r) { return (*counters_after)[r] - (*counters_before)[r]; };
  auto all_deltas = [&] {
    std::string d;
    for (const auto& [r, v] : *counters_after) {
      if (v != (*counters_before)[r]) d += StrCat(" ", datapath::ReasonName(r), "=", delta(r));
    }
    return d;
  };
  for (uint32_t r : cs.step.empty() ? ExpectFor(cs.kind).per_run : std::vector<uint32_t>{}) {
    if (delta(r) != measured_runs) {
      return fail(
          absl::InternalError(StrCat("counter ", datapath::ReasonName(r), " grew by ", delta(r),
                                     ", want ", measured_runs, "; all changes:", all_deltas())));
    }
  }
  if (cs.kind == Kind::kSnatNew && cs.step.empty()) {
    const uint64_t ok = delta(CN_R_SNAT), dropped = delta(CN_R_DROP_NAT_NO_PORT);
    if (ok + dropped != measured_runs || delta(CN_R_NAT_NEW) != ok) {
      return fail(absl::InternalError(
          StrCat("SNAT: ", ok, " translated + ", dropped, " dropped != ", measured_runs, " runs")));
    }
    result.drop_pct = measured_runs ? 100.0 * dropped / measured_runs : 0;
    result.retries_per_flow =
        measured_runs ? static_cast<double>(delta(CN_R_NAT_PORT_RETRY)) / measured_runs : 0;
    state.counters["nat_drop_pct"] = result.drop_pct;
    state.counters["port_retries"] = result.retries_per_flow;
  }

  result.ok = true;
  result.ns = Median(nets);
  result.floor_ns = Median(floors);
  result.harness_ns = Median(harnesses);
  result.ratio = result.floor_ns > 0 ? result.ns / result.floor_ns : 0;
  result.runs = measured_runs;
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * repeat);
  state.counters["ns_per_pkt"] = result.ns;
  state.counters["Mpps"] = result.ns > 0 ? 1e3 / result.ns : 0;
  state.counters["floor_ns"] = result.floor_ns;
  state.counters["floor_ratio"] = result.ratio;
  state.counters["harness_ns"] = result.harness_ns;
  if (cs.kind == Kind::kSocketLbEstablished) {
    if (const CaseResult* c = ClusterIpTwin(cs)) {
      state.counters["clusterip_floor_ratio"] = c->ratio;
      state.counters["socklb_over_clusterip"] = result.ratio / c->ratio;
    }
  }
  if (monitor) {
    // Sampled 1-in-N at random: N = 1 sends exactly one event per new flow.
    const uint64_t lost = delta(CN_R_MONITOR_LOST);
    if (cs.kind == Kind::kNew && cs.env.monitor_sample == 1 &&
        monitor_events + lost != measured_runs)
      return fail(absl::InternalError(StrCat("monitor: ", monitor_events, " events + ", lost,
                                             " lost != ", measured_runs, " new flows")));
    state.counters["monitor_events"] = static_cast<double>(monitor_events);
    state.counters["monitor_lost"] = static_cast<double>(lost);
    if (const CaseResult* off = MonitorOffTwin(cs)) {
      state.counters["monitor_off_floor_ratio"] = off->ratio;
      state.counters["monitor_over_off"] = result.ratio / off->ratio;
    }
  }
  if (const CaseResult* v4 = V4Twin(cs)) {
    state.counters["v4_floor_ratio"] = v4->ratio;
    state.counters["v6_over_v4"] = result.ratio / v4->ratio;
  }
  state.SetLabel(StrCat("R=", repeat));
  auto it = std::find_if(g_results.begin(), g_results.end(),
                         [&](const CaseResult& r) { return r.spec.name == cs.name; });
  if (it != g_results.end())
    *it = result;
  else
    g_results.push_back(result);
}

// ---------------------------------------------------------------------------------------------
// Case list.

std::string KindName(Kind k) {
  switch (k) {
    case Kind::kFloor:
      return "Floor/empty_program";
    case Kind::kEstablished:
      return "ClusterIP/established";
    case Kind::kReply:
      return "ClusterIP/reply_rev_nat";
    case Kind::kNew:
      return "ClusterIP/new_connection";
    case Kind::kSnatNew:
      return "SNAT/egress_new_flow";
    case Kind::kSnatEstablished:
      return "SNAT/egress_established";
    case Kind::kNodePortRemoteNew:
      return "NodePort/remote_backend_new";
    case Kind::kNodePortRemoteEstablished:
      return "NodePort/remote_backend_established";
    case Kind::kSocketLbEstablished:
      return "SocketLB/established";
    case Kind::kPlainDirect:
      return "Check/ct_hit_no_nat_direct";
    case Kind::kPlainHarness:
      return "Check/ct_hit_no_nat_harness";
  }
  return "?";
}

std::vector<CaseSpec> Cases() {
  std::vector<CaseSpec> out;
  auto add = [&](std::string group, Kind k, EnvSpec env) {
    std::string name = KindName(k);
    if (env.standard) {
      name += "/standard_services";
    } else {
      name += StrCat("/services:", env.services);
    }
    if (env.backends) name += StrCat("/backends:", env.backends);
    if (env.ct_fill_pct) name += StrCat("/ct_fill:", env.ct_fill_pct);
    if (env.ct_hash) name += "/ct_map:hash";
    if (env.nat_occupancy_pct || k == Kind::kSnatNew)
      name += StrCat("/port_occupancy:", env.nat_occupancy_pct);
    if (env.monitor_sample) name += StrCat("/monitor_sample:", env.monitor_sample);
    out.push_back(CaseSpec{std::move(group), std::move(name), k, env});
  };
  const bool q = g_opt.quick;
  // 1. Service count (fixture backends, empty conntrack). Smallest first; 100k last (heavy).
  std::vector<uint32_t> counts =
      q ? std::vector<uint32_t>{1, 1000} : std::vector<uint32_t>{1, 1000, 10000, 100000};
  for (uint32_t n : counts) {
    EnvSpec e{.services = n};
    if (n == 1) {
      add("floor", Kind::kFloor, e);
      add("check", Kind::kPlainDirect, e);
      add("check", Kind::kPlainHarness, e);
    }
    add("services", Kind::kEstablished, e);
    // Socket LB next to the packet path's established flow (issue 15), same environment.
    if (n == 1) add("socket_lb", Kind::kSocketLbEstablished, e);
    add("services", Kind::kReply, e);
    add("services", Kind::kNew, e);
    // The flow monitor's sampling next to the same new flow with it off (issue 17): every new
    // flow and one in 100 sent to the ring buffer; established flows never send events.
    if (n == 1) {
      for (uint16_t s : {uint16_t{1}, uint16_t{100}}) {
        EnvSpec m = e;
        m.monitor_sample = s;
        add("monitor", Kind::kNew, m);
        if (s == 1) add("monitor", Kind::kEstablished, m);
      }
    }
  }
  // 1b. Cost breakdown of the established and new-flow paths (1 service): prefixes of the
  //     from-pod program, then the full program again in the same environment.
  {
    EnvSpec e{.services = 1};
    struct Step {
      Kind kind;
      const char* prog;
      const char* label;
      const char* base = nullptr;  // the program of the row this one adds to (default: previous)
    };
    const Step steps[] = {
        {Kind::kEstablished, "nb_est_parse", "1 parse + config lookup"},
        {Kind::kEstablished, "nb_est_clock", "2 + clock (cn_now_s)"},
        {Kind::kEstablished, "nb_est_ct_lookup", "3 + conntrack lookup (hit)"},
        {Kind::kEstablished, "nb_est_ct_update", "4 + conntrack update + counters"},
        {Kind::kEstablished, "", "5 + DNAT rewrite (the full program)"},
        // The rewrite split (IPv6 pays its extra cost there), each against row 4.
        {Kind::kEstablished, "nb_est_dnat_port", "6 = 4 + DNAT port rewrite only",
         "nb_est_ct_update"},
        {Kind::kEstablished, "nb_est_dnat_addr", "7 = 4 + DNAT address rewrite only",
         "nb_est_ct_update"},
        {Kind::kNew, "nb_new_ct_miss", "1 parse + clock + conntrack lookup (miss)"},
        {Kind::kNew, "nb_new_service", "2 + service lookup"},
        {Kind::kNew, "nb_new_backend", "3 + backend selection (Maglev)"},
        {Kind::kNew, "nb_new_ct_create", "4 + conntrack pair create (2 map inserts)"},
        {Kind::kNew, "", "5 + DNAT rewrite + counters (the full program)"},
    };
    std::map<std::string, std::string> name_of;  // program -> case name
    std::string prev;
    for (const Step& st : steps) {
      std::string path = st.kind == Kind::kEstablished ? "established" : "new_connection";
      std::string name = StrCat("Steps/", path, "/", std::string(1, st.label[0]), "_",
                                st.prog[0] ? std::string(st.prog + 3) : std::string("full"));
      const bool first = st.label[0] == '1';
      std::string base = first ? "" : st.base ? name_of.at(st.base) : prev;
      out.push_back(CaseSpec{"steps", name, st.kind, e, st.prog,
                             StrCat("Steps/", path, ": ", st.label), base});
      name_of[st.prog] = name;
      prev = name;
    }
  }
  // 2. Backends per service (1 service, Maglev M=16381).
  for (uint32_t b : q ? std::vector<uint32_t>{10} : std::vector<uint32_t>{1, 10, 100, 1000}) {
    EnvSpec e{.services = 1, .backends = b};
    add("backends", Kind::kNew, e);
    add("backends", Kind::kEstablished, e);
  }
  // 3. Conntrack fill (0 % is the services:1 row).
  for (uint32_t p : q ? std::vector<uint32_t>{50} : std::vector<uint32_t>{50, 90}) {
    EnvSpec e{.services = 1, .ct_fill_pct = p};
    add("ct_fill", Kind::kEstablished, e);
    add("ct_fill", Kind::kNew, e);
  }
  // 3b. The conntrack map as a plain (preallocated) hash instead of the LRU hash: what the two
  //     LRU inserts of a new flow cost.
  {
    EnvSpec e{.services = 1, .ct_hash = true};
    add("ct_map", Kind::kNew, e);
    add("ct_map", Kind::kEstablished, e);
  }
  // 4. SNAT port occupancy and NodePort, on the fixture's standard services.
  for (uint32_t p : q ? std::vector<uint32_t>{0, 50} : std::vector<uint32_t>{0, 50, 90}) {
    EnvSpec e{.services = 8, .nat_occupancy_pct = p, .standard = true};
    if (p == 0) {
      // 4b. Cost breakdown of the SNAT new flow (cn_to_world), prefixes built from nat.h.
      const std::pair<const char*, const char*> steps[] = {
          {"nb_new_ct_miss", "1 parse + clock + conntrack lookup (miss)"},
          {"nb_snat_egress_miss", "2 + node address + egress mapping lookup (miss)"},
          {"nb_snat_index", "3 + random + port index lookup"},
          {"nb_snat_alloc", "4 + allocation: ingress claim, index bit, egress mapping"},
          {"", "5 + masquerade checks, rewrite, counters (the full program)"},
      };
      std::string prev;
      for (const auto& [prog, label] : steps) {
        std::string name = StrCat("Steps/snat_new_flow/", std::string(1, label[0]), "_",
                                  prog[0] ? std::string(prog + 3) : std::string("full"));
        out.push_back(CaseSpec{"steps", name, Kind::kSnatNew, e, prog,
                               StrCat("Steps/snat_new_flow: ", label), prev});
        prev = name;
      }
    }
    add("snat", Kind::kSnatNew, e);
    if (p == 0) {  // the fixtures' SNAT flow keeps its port only when it is free
      add("snat", Kind::kSnatEstablished, e);
      add("nodeport", Kind::kNodePortRemoteNew, e);
      add("nodeport", Kind::kNodePortRemoteEstablished, e);
    }
  }
  // Run the heavy 10k/100k environments last: move those cases to the end, keeping order.
  std::stable_partition(out.begin(), out.end(),
                        [](const CaseSpec& c) { return c.env.standard || c.env.services < 10000; });
  // IPv6 twins: each run of cases sharing an environment is followed by the same cases on the
  // IPv6 twin environment (one datapath set-up per environment and family).
  std::vector<CaseSpec> both;
  for (size_t i = 0; i < out.size();) {
    size_t j = i;
    while (j < out.size() && out[j].env == out[i].env) ++j;
    both.insert(both.end(), out.begin() + static_cast<ptrdiff_t>(i),
                out.begin() + static_cast<ptrdiff_t>(j));
    for (size_t k = i; k < j; ++k) {
      CaseSpec v6 = out[k];
      v6.env.ipv6 = true;
      v6.name += kIpv6Suffix;
      if (size_t colon = v6.label.find(": "); colon != std::string::npos)
        v6.label.insert(colon, " (IPv6)");
      if (!v6.step_base.empty()) v6.step_base += kIpv6Suffix;
      both.push_back(std::move(v6));
    }
    i = j;
  }
  return both;
}

// ---------------------------------------------------------------------------------------------
// Report: Markdown table and gnuplot data.

const CaseResult* Find(std::string_view kind_name, uint32_t services, bool ipv6 = false) {
  for (const auto& r : g_results) {
    if (r.ok && r.spec.label.empty() && KindName(r.spec.kind) == kind_name &&
        r.spec.env.ipv6 == ipv6 && !r.spec.env.standard && r.spec.env.services == services &&
        r.spec.env.backends == 0 && r.spec.env.ct_fill_pct == 0 && !r.spec.env.ct_hash)
      return &r;
  }
  return nullptr;
}

// The packet path's established ClusterIP flow in the same environment and family as `r`.
const CaseResult* ClusterIpTwin(const CaseSpec& s) {
  std::string name = StrCat(KindName(Kind::kEstablished), "/services:", s.env.services);
  if (s.env.ipv6) name += kIpv6Suffix;
  const CaseResult* r = FindByName(name);
  return r && r->ok && r->ratio > 0 ? r : nullptr;
}

std::string Goal(const CaseResult& r) {
  std::string g;
  auto mark = [](bool ok) { return ok ? "met" : "MISSED"; };
  if (r.spec.kind == Kind::kSocketLbEstablished) {
    if (const CaseResult* c = ClusterIpTwin(r.spec)) {
      char buf[128];  // both in multiples of their own floor, measured in the same iterations
      std::snprintf(buf, sizeof(buf), "%.2fx of ClusterIP/established%s in floor multiples",
                    r.ratio / c->ratio, r.spec.env.ipv6 ? " (IPv6)" : "");
      g = buf;
    }
  }
  if (r.spec.kind == Kind::kEstablished) g = StrCat("<= 3x floor: ", mark(r.ratio <= 3.0));
  if (r.spec.kind == Kind::kNew) g = StrCat("<= 10x floor: ", mark(r.ratio <= 10.0));
  if (!r.spec.env.standard && r.spec.env.services == 100000 && r.spec.env.backends == 0) {
    // Compared in multiples of each case's own floor (measured in the same iterations), which
    // cancels the machine-speed drift between two cases run minutes apart.
    if (const CaseResult* one = Find(KindName(r.spec.kind), 1, r.spec.env.ipv6)) {
      char buf[128];
      const double x = r.ratio / one->ratio;
      std::snprintf(buf, sizeof(buf), "%s%.2fx of 1 service in floor multiples (<= 1.15x: %s)",
                    g.empty() ? "" : "; ", x, mark(x <= 1.15));
      g += buf;
    }
  }
  if (const CaseResult* v4 = V4Twin(r.spec); v4 && r.spec.kind == Kind::kFloor) {
    char buf[128];  // both are 1x by definition: compare the floors themselves
    std::snprintf(buf, sizeof(buf), "the floor on the IPv6 packet; IPv4's: %.1f ns", v4->ns);
    g += buf;
  } else if (v4) {
    char buf[128];
    const double x = r.ratio / v4->ratio;
    std::snprintf(buf, sizeof(buf), "%s%.2fx of IPv4 in floor multiples (within %.1fx: %s)",
                  g.empty() ? "" : "; ", x, kIpv6Target, mark(x <= kIpv6Target));
    g += buf;
  }
  return g;
}

std::string Fixed2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

// IPv6 against IPv4, case by case: both in multiples of their own floor (the empty program on
// their own packet, measured in the same iterations), the ratio and the target.
std::string Ipv6Table() {
  std::string out =
      "\n**IPv6 against IPv4** (each in multiples of its own floor, measured in the same "
      "iterations; issue 14: IPv6 within 1.2x of IPv4):\n\n"
      "| case | IPv4 x floor | IPv6 x floor | v6/v4 | IPv4 ns/packet | IPv6 ns/packet | floor ns "
      "(IPv4 / IPv6) | within 1.2x |\n|---|---:|---:|---:|---:|---:|---:|---|\n";
  char buf[512];
  for (const auto& r : g_results) {
    if (!r.spec.env.ipv6 || r.spec.kind == Kind::kFloor) continue;
    const CaseResult* v4 = V4Twin(r.spec);
    // The IPv4 row's name (or breakdown label): the IPv6 row is its twin.
    std::string name = r.spec.name;
    if (v4) name = v4->spec.label.empty() ? v4->spec.name : v4->spec.label;
    if (!r.ok || !v4) {
      out += StrCat("| ", name, " | ", v4 ? Fixed2(v4->ratio) : "error", " | ",
                    r.ok ? Fixed2(r.ratio) : "error", " | | | | | - |\n");
      continue;
    }
    const double x = r.ratio / v4->ratio;
    const std::string verdict =
        !r.spec.label.empty() ? "(breakdown step)"
        : r.spec.kind == Kind::kPlainDirect || r.spec.kind == Kind::kPlainHarness ? "(validation)"
        : x <= kIpv6Target                                                        ? "met"
                                                                                  : "MISSED";
    std::snprintf(buf, sizeof(buf),
                  "| %s | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f / %.1f | %s |\n", name.c_str(),
                  v4->ratio, r.ratio, x, v4->ns, r.ns, v4->floor_ns, r.floor_ns, verdict.c_str());
    out += buf;
  }
  return out;
}

// The first successful result of `kind` matching `pred` (family `ipv6`, no breakdown label).
template <typename Pred>
const CaseResult* FindCase(Kind kind, bool ipv6, Pred pred) {
  for (const auto& r : g_results)
    if (r.ok && r.spec.label.empty() && r.spec.kind == kind && r.spec.env.ipv6 == ipv6 &&
        pred(r.spec.env))
      return &r;
  return nullptr;
}

// Issue 16's goals table (the packet-path rows; bench/dp_control reports the control-plane rows
// and bench/compare the real-traffic one): each goal, what this run measured, met or MISSED.
// A goal whose case did not run (filtered out, or failed) says so instead of a verdict.
std::string GoalsTable() {
  std::string out =
      "\n**Goals** (issue 16; ratios from this run: x floor = multiples of the empty program on "
      "the same packet in the same iterations):\n\n| goal | family | measured | target | verdict "
      "|\n|---|---|---:|---|---|\n";
  auto row = [&](const std::string& goal, bool v6, const CaseResult* r, const std::string& value,
                 const std::string& target, bool ok) {
    out += StrCat("| ", goal, " | ", v6 ? "IPv6" : "IPv4", " | ", r ? value : "not measured", " | ",
                  target, " | ", r ? (ok ? "met" : "MISSED") : "-", " |\n");
  };
  auto plain = [](uint32_t services) {
    return [services](const EnvSpec& e) {
      return !e.standard && e.services == services && e.backends == 0 && e.ct_fill_pct == 0 &&
             !e.ct_hash;
    };
  };
  auto x = [](double v) { return StrCat(Fixed2(v), "x"); };
  for (bool v6 : {false, true}) {
    for (uint32_t n : {1u, 1000u}) {
      const CaseResult* e = FindCase(Kind::kEstablished, v6, plain(n));
      row(StrCat("ClusterIP established, packet path (", n, n == 1 ? " service)" : " services)"),
          v6, e, e ? x(e->ratio) : "", "<= 3x floor", e && e->ratio <= 3.0);
    }
    for (uint32_t n : {1u, 1000u}) {
      const CaseResult* w = FindCase(Kind::kNew, v6, plain(n));
      row(StrCat("ClusterIP new connection (", n, n == 1 ? " service)" : " services)"), v6, w,
          w ? x(w->ratio) : "", "<= 10x floor", w && w->ratio <= 10.0);
    }
    const CaseResult* empty = FindCase(Kind::kNew, v6, plain(1));
    const CaseResult* full = FindCase(Kind::kNew, v6, [](const EnvSpec& e) {
      return !e.standard && e.services == 1 && e.backends == 0 && e.ct_fill_pct == 90 && !e.ct_hash;
    });
    const double fx = empty && full ? full->ratio / empty->ratio : 0;
    row("new connection, conntrack 90 % full", v6, empty && full ? full : nullptr,
        StrCat(Fixed2(fx), "x the empty-table cost (", x(full ? full->ratio : 0), " floor)"),
        "<= 1.3x the empty-table cost", fx > 0 && fx <= 1.3);
    const CaseResult* snat = FindCase(Kind::kSnatNew, v6, [](const EnvSpec& e) {
      return e.standard && e.nat_occupancy_pct == 0;
    });
    row("SNAT new flow", v6, snat, snat ? x(snat->ratio) : "", "<= 15x floor",
        snat && snat->ratio <= 15.0);
    const CaseResult* np =
        FindCase(Kind::kNodePortRemoteNew, v6, [](const EnvSpec& e) { return e.standard; });
    row("NodePort remote backend, new flow", v6, np, np ? x(np->ratio) : "", "<= 20x floor",
        np && np->ratio <= 20.0);
    const CaseResult* occ = FindCase(Kind::kSnatNew, v6, [](const EnvSpec& e) {
      return e.standard && e.nat_occupancy_pct == 90;
    });
    row("SNAT at 90 % port occupancy", v6, occ,
        occ ? StrCat(Fixed2(occ->drop_pct), " % dropped, ", Fixed2(occ->retries_per_flow),
                     " retries/flow")
            : "",
        "<= 0.5 % dropped, <= 3 retries/flow",
        occ && occ->drop_pct <= 0.5 && occ->retries_per_flow <= 3.0);
  }
  // IPv6 within 1.2x of IPv4 (floor multiples), over every measured pair (not breakdown steps).
  double worst = 0;
  const CaseResult* worst_r = nullptr;
  for (const auto& r : g_results) {
    if (!r.ok || !r.spec.env.ipv6 || !r.spec.label.empty() || r.spec.kind == Kind::kFloor ||
        r.spec.kind == Kind::kPlainDirect || r.spec.kind == Kind::kPlainHarness)
      continue;
    const CaseResult* v4 = V4Twin(r.spec);
    if (!v4) continue;
    if (r.ratio / v4->ratio > worst) {
      worst = r.ratio / v4->ratio;
      worst_r = &r;
    }
  }
  out +=
      StrCat("| IPv6 cases within 1.2x of IPv4 (worst pair", worst_r ? ": " : "",
             worst_r ? worst_r->spec.name : "", ") | both | ",
             worst_r ? StrCat(Fixed2(worst), "x") : "not measured", " | <= ", Fixed2(kIpv6Target),
             "x | ", worst_r ? (worst <= kIpv6Target ? "met" : "MISSED") : "-", " |\n");
  return out;
}

void WriteTable(const std::string& path) {
  std::ofstream out(path);
  out << "| case | services | backends | conntrack fill | SNAT ports taken | ns/packet | Mpps |"
         " x floor | goal / note |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n";
  char buf[512];
  for (const auto& r : g_results) {
    const EnvSpec& e = r.spec.env;
    std::string kind =
        r.spec.label.empty() ? KindName(r.spec.kind) + (e.ipv6 ? " (IPv6)" : "") : r.spec.label;
    std::string backends = e.backends ? StrCat(e.backends) : std::string("2");
    std::string fill = StrCat(e.ct_fill_pct, " %", e.ct_hash ? " (hash)" : "");
    std::string ports =
        r.spec.kind == Kind::kSnatNew ? StrCat(e.nat_occupancy_pct, " %") : std::string("-");
    if (!r.ok) {
      out << "| " << kind << " | " << e.services << " | " << backends << " | " << fill << " | "
          << ports << " | error | | | " << r.error << " |\n";
      continue;
    }
    std::string extra = r.spec.label.empty() ? Goal(r) : std::string();
    if (!r.spec.label.empty()) {  // breakdown row: what this step adds
      // In floor multiples of each row, scaled by this row's floor: cancels machine-speed drift
      // between the rows (run one after the other).
      const CaseResult* base = FindByName(r.spec.step_base);
      const bool first = r.spec.step_base.empty();
      if (first || (base && base->ok)) {
        const double before = first ? 1.0 : base->ratio;
        char d[96];
        std::snprintf(d, sizeof(d), "step adds %+.0f ns%s", (r.ratio - before) * r.floor_ns,
                      first ? " (over the floor)" : "");
        extra = d;
      }
    }
    if (r.spec.kind == Kind::kSnatNew) {
      char s[96];
      std::snprintf(s, sizeof(s), "%.2f port retries/flow, %.1f %% dropped (no port)",
                    r.retries_per_flow, r.drop_pct);
      extra = s;
    }
    std::snprintf(buf, sizeof(buf), "| %s | %u | %s | %s | %s | %.1f | %.2f | %.2f | %s |\n",
                  kind.c_str(), e.services, backends.c_str(), fill.c_str(), ports.c_str(), r.ns,
                  1e3 / r.ns, r.ratio, extra.c_str());
    out << buf;
  }
  double floor = 0, floor6 = 0;
  for (const auto& r : g_results)
    if (r.ok && r.spec.kind == Kind::kFloor) (r.spec.env.ipv6 ? floor6 : floor) = r.ns;
  std::snprintf(buf, sizeof(buf),
                "\nFloor (empty tc program, same packet, same run): %.1f ns/packet.\n", floor);
  out << buf;
  std::snprintf(buf, sizeof(buf), "Floor on the IPv6 packet (same run): %.1f ns/packet.\n", floor6);
  out << buf;
  out << GoalsTable();
  out << Ipv6Table();
}

void WritePlot(const std::string& path) {
  std::ofstream out(path);
  out << "# services established_ns reply_ns new_ns floor_ns\n";
  for (uint32_t n : {1u, 1000u, 10000u, 100000u}) {
    const CaseResult* e = Find(KindName(Kind::kEstablished), n);
    const CaseResult* r = Find(KindName(Kind::kReply), n);
    const CaseResult* w = Find(KindName(Kind::kNew), n);
    if (!e || !r || !w) continue;
    char buf[160];
    std::snprintf(buf, sizeof(buf), "%u %.1f %.1f %.1f %.1f\n", n, e->ns, r->ns, w->ns,
                  e->floor_ns);
    out << buf;
  }
}

}  // namespace
}  // namespace cninet::bench

int main(int argc, char** argv) {
  using namespace cninet::bench;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string v;
    if (std::strcmp(argv[i], "--quick") == 0) {
      g_opt.quick = true;
    } else if (ParseFlag(argv[i], "--repeat_hot", &v)) {
      g_opt.repeat_hot = static_cast<uint32_t>(std::stoul(v));
    } else if (ParseFlag(argv[i], "--repeat_new", &v)) {
      g_opt.repeat_new = static_cast<uint32_t>(std::stoul(v));
    } else if (ParseFlag(argv[i], "--table_out", &v)) {
      g_opt.table_out = v;
    } else if (ParseFlag(argv[i], "--plot_out", &v)) {
      g_opt.plot_out = v;
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (g_opt.quick) {
    g_opt.repeat_hot = std::min<uint32_t>(g_opt.repeat_hot, 2000);
    g_opt.repeat_new = std::min<uint32_t>(g_opt.repeat_new, 500);
  }
  if (g_opt.repeat_new > 38000 || g_opt.repeat_new == 0 || g_opt.repeat_hot == 0) {
    std::fprintf(stderr, "--repeat_new must be 1..38000, --repeat_hot >= 1\n");
    return 2;
  }
  // The programs' FIB lookups (NodePort replies) must see no routes, as the fixtures expect.
  if (!EnterPrivateNetns("nat_path_bench")) return 1;
  if (!InitBenchmarks(rest)) return 2;
  for (const CaseSpec& c : Cases()) {
    benchmark::RegisterBenchmark(c.name.c_str(), [c](benchmark::State& s) { RunCase(s, c); })
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_env.reset();
  if (!g_opt.table_out.empty()) WriteTable(g_opt.table_out);
  std::printf("%s", Ipv6Table().c_str());
  if (!g_opt.plot_out.empty()) WritePlot(g_opt.plot_out);
  int errors = 0;
  for (const auto& r : g_results) errors += !r.ok;
  if (errors) std::fprintf(stderr, "[nat_path] %d case(s) failed\n", errors);
  return errors ? 1 : 0;
}
