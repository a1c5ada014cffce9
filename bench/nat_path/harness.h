// The NAT-path benchmark harness from user space: loads bench/nat_path/harness.bpf.c, points its
// tail-call slot at one of a Datapath's loaded programs and runs BPF_PROG_TEST_RUN with `repeat`.
// Every run starts from the fixture's original bytes (optionally with a fresh source port), so
// rewriting programs can be measured with `repeat` (see harness.bpf.c).
#ifndef CNINET_BENCH_NAT_PATH_HARNESS_H_
#define CNINET_BENCH_NAT_PATH_HARNESS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/datapath/datapath.h"

struct nat_path_harness_bpf;
struct nat_path_steps_bpf;

namespace cninet::bench {

/// Source ports written before each run: base + (counter * stride) % span, host order. A stride
/// coprime with span visits every port of the cycle once, scattered rather than consecutive.
struct SportSequence {
  uint16_t base = 1024;  ///< first port
  uint32_t span = 1;     ///< ports in the cycle
  uint32_t stride = 1;   ///< step between consecutive runs (coprime with span)
  /// The port of run `counter`.
  uint16_t Port(uint32_t counter) const {
    return static_cast<uint16_t>(base + uint64_t{counter} * stride % span);
  }
};

/// Outcome of one harness batch.
struct HarnessRun {
  int retval = 0;               ///< tc verdict of the last run
  uint32_t duration_ns = 0;     ///< kernel's average per run
  std::vector<uint8_t> packet;  ///< packet after the last run
};

/// Which program the harness tail-calls.
enum class Slot { kEmpty, kTarget };

/// Loads the harness and drives it. Holds references to the datapath's programs (not to the
/// Datapath object); destroy it before the Datapath to release them promptly.
class Harness {
 public:
  /// Loads the harness next to `dp`, whose programs are found among the kernel's loaded programs
  /// by name and by the conntrack map they use.
  static absl::StatusOr<std::unique_ptr<Harness>> Create(const datapath::Datapath& dp);
  ~Harness();
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  /// Makes `hook`'s program (kFromPod, kFromWorld, kToWorld) the tail-call target.
  absl::Status SetTarget(datapath::Hook hook);
  /// Makes the tc program `prog_fd` (borrowed, kept alive by the caller) the tail-call target.
  absl::Status SetTargetFd(int prog_fd);
  /// Sets the packet restored before every run; `sport` (TCP/UDP over IPv4, or IPv6 without
  /// extension headers) varies the source port per run. The run counter restarts at 0.
  absl::Status SetPacket(std::span<const uint8_t> packet, std::optional<SportSequence> sport);
  /// Runs seen by the port sequence so far (the next run uses base + Counter() % span).
  absl::StatusOr<uint32_t> Counter() const;
  /// BPF_PROG_TEST_RUN of the harness `repeat` times, tail-calling `slot`.
  absl::StatusOr<HarnessRun> Run(Slot slot, uint32_t repeat) const;

 private:
  Harness() = default;
  nat_path_harness_bpf* skel_ = nullptr;
  std::vector<uint8_t> packet_;
  int from_pod_fd_ = -1;
  int from_world_fd_ = -1;
  int to_world_fd_ = -1;
};

/// The cost-breakdown programs of steps.bpf.c, loaded on the maps of a Datapath.
class Steps {
 public:
  /// Loads steps.bpf.c with every cn_* map taken from `dp` (libbpf map reuse).
  static absl::StatusOr<std::unique_ptr<Steps>> Load(const datapath::Datapath& dp);
  ~Steps();
  Steps(const Steps&) = delete;
  Steps& operator=(const Steps&) = delete;
  /// The fd of program `name` (borrowed; valid while this object lives); NotFound if absent.
  absl::StatusOr<int> ProgramFd(std::string_view name) const;

 private:
  Steps() = default;
  nat_path_steps_bpf* skel_ = nullptr;
};

}  // namespace cninet::bench

#endif  // CNINET_BENCH_NAT_PATH_HARNESS_H_
