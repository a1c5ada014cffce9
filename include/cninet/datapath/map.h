/// @file
/// BPF maps from user space: an owned file descriptor (RawMap) and a typed view Map<K, V> with
/// lookup, update, delete, batch operations, iteration and size. PerCpu<V> values for per-CPU maps.
#ifndef CNINET_DATAPATH_MAP_H_
#define CNINET_DATAPATH_MAP_H_

#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cninet/base/status.h"

namespace cninet::datapath {

/// How an update treats an existing key.
enum class UpdateMode { kAny, kNoExist, kExist };

/// Kernel facts about a map.
struct MapInfo {
  uint32_t type = 0;         ///< BPF_MAP_TYPE_*.
  uint32_t key_size = 0;     ///< Key bytes.
  uint32_t value_size = 0;   ///< Value bytes (per CPU for per-CPU maps).
  uint32_t max_entries = 0;  ///< Capacity.
  uint32_t flags = 0;        ///< Map flags.
  uint32_t id = 0;           ///< Kernel map id.
  std::string name;          ///< Map name.
};

/// An owned BPF map file descriptor (closed in the destructor) with untyped operations.
class RawMap {
 public:
  RawMap() = default;
  ~RawMap();
  /// Takes the descriptor.
  RawMap(RawMap&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  /// Closes the current descriptor, takes `other`'s.
  RawMap& operator=(RawMap&& other) noexcept;
  RawMap(const RawMap&) = delete;
  RawMap& operator=(const RawMap&) = delete;

  /// Opens a pinned map (bpffs path).
  static absl::StatusOr<RawMap> OpenPinned(const std::string& path);
  /// Takes ownership of `fd` (an fd the caller will not close).
  static RawMap Adopt(int fd);
  /// A new descriptor for the same map.
  absl::StatusOr<RawMap> Dup() const;

  /// True when a descriptor is held.
  bool valid() const { return fd_ >= 0; }
  /// Borrowed descriptor, for libbpf calls inside cninet; never close it.
  int fd() const { return fd_; }
  /// Type, sizes and name from the kernel.
  absl::StatusOr<MapInfo> Info() const;

  /// NotFound when the key is absent.
  absl::Status Lookup(const void* key, void* value) const;
  /// Writes key -> value (AlreadyExists / NotFound per `mode`, ResourceExhausted when full).
  absl::Status Update(const void* key, const void* value, UpdateMode mode = UpdateMode::kAny);
  /// NotFound when the key is absent.
  absl::Status Delete(const void* key);
  /// Writes the key after `key` (or the first key when `key` is null); false at the end.
  absl::StatusOr<bool> NextKey(const void* key, void* next) const;
  /// Batch update of `count` packed keys/values; falls back to single updates when the kernel
  /// lacks batch support for the map type.
  absl::Status UpdateBatch(const void* keys, const void* values, uint32_t count, uint32_t key_size,
                           uint32_t value_size);
  /// Batch delete; returns how many were deleted (absent keys are skipped).
  absl::StatusOr<size_t> DeleteBatch(const void* keys, uint32_t count, uint32_t key_size);
  /// Calls fn(key, value) for every element (batch lookups where supported); fn returns false to
  /// stop. `value_size` is the full value buffer size (per-CPU maps: rounded size x CPUs).
  absl::Status ForEach(uint32_t key_size, uint32_t value_size,
                       const std::function<bool(const void*, const void*)>& fn) const;

 private:
  explicit RawMap(int fd) : fd_(fd) {}
  int fd_ = -1;
};

/// Number of possible CPUs (the size of per-CPU values).
int PossibleCpus();

/// A per-CPU value as user space sees it: one V per possible CPU.
template <typename V>
struct PerCpu {
  std::vector<V> values;  ///< One value per possible CPU.
  /// Sum over CPUs with V::operator+= (or + for arithmetic types).
  V Sum() const {
    V total{};
    for (const auto& v : values) total += v;
    return total;
  }
};

namespace map_internal {
template <typename V>
struct ValueCodec {
  static uint32_t KernelValueSize() { return sizeof(V); }
  static uint32_t Size() { return sizeof(V); }
  static void Encode(const V& v, uint8_t* out) { std::memcpy(out, &v, sizeof(V)); }
  static void Decode(const uint8_t* in, V* v) { std::memcpy(v, in, sizeof(V)); }
};
template <typename V>
struct ValueCodec<PerCpu<V>> {
  static uint32_t KernelValueSize() { return sizeof(V); }
  static uint32_t Stride() { return (sizeof(V) + 7) / 8 * 8; }
  static uint32_t Size() { return Stride() * static_cast<uint32_t>(PossibleCpus()); }
  static void Encode(const PerCpu<V>& v, uint8_t* out) {
    std::memset(out, 0, Size());
    for (size_t i = 0; i < v.values.size() && i < static_cast<size_t>(PossibleCpus()); ++i)
      std::memcpy(out + i * Stride(), &v.values[i], sizeof(V));
  }
  static void Decode(const uint8_t* in, PerCpu<V>* v) {
    v->values.resize(PossibleCpus());
    for (int i = 0; i < PossibleCpus(); ++i)
      std::memcpy(&v->values[i], in + i * Stride(), sizeof(V));
  }
};
}  // namespace map_internal

/// A typed view of a map whose key is K and value V (or PerCpu<V>); K and V are trivially
/// copyable ABI structs. Sizes are checked against the kernel's when wrapping.
template <typename K, typename V>
class Map {
  static_assert(std::is_trivially_copyable_v<K>, "map keys are plain ABI structs");
  using Codec = map_internal::ValueCodec<V>;

 public:
  Map() = default;
  /// Wraps `raw`, failing with FailedPrecondition when key/value sizes differ from K/V.
  static absl::StatusOr<Map> Wrap(RawMap raw) {
    CNINET_ASSIGN_OR_RETURN(MapInfo info, raw.Info());
    if (info.key_size != sizeof(K) || info.value_size != Codec::KernelValueSize()) {
      return absl::FailedPreconditionError(StrCatSizes(info.name, info.key_size, info.value_size,
                                                       sizeof(K), Codec::KernelValueSize()));
    }
    Map m;
    m.raw_ = std::move(raw);
    m.info_ = info;
    return m;
  }

  /// NotFound when absent.
  absl::StatusOr<V> Lookup(const K& key) const {
    std::vector<uint8_t> buf(Codec::Size());
    CNINET_RETURN_IF_ERROR(raw_.Lookup(&key, buf.data()));
    V v;
    Codec::Decode(buf.data(), &v);
    return v;
  }
  /// Writes key -> value (AlreadyExists / NotFound per `mode`, ResourceExhausted when full).
  absl::Status Update(const K& key, const V& value, UpdateMode mode = UpdateMode::kAny) {
    std::vector<uint8_t> buf(Codec::Size());
    Codec::Encode(value, buf.data());
    return raw_.Update(&key, buf.data(), mode);
  }
  /// NotFound when absent.
  absl::Status Delete(const K& key) { return raw_.Delete(&key); }
  /// Updates keys[i] -> values[i] in as few syscalls as the kernel allows.
  absl::Status UpdateBatch(std::span<const K> keys, std::span<const V> values) {
    if (keys.size() != values.size())
      return absl::InvalidArgumentError("keys/values size mismatch");
    if (keys.empty()) return absl::OkStatus();
    std::vector<uint8_t> vbuf(Codec::Size() * values.size());
    for (size_t i = 0; i < values.size(); ++i)
      Codec::Encode(values[i], vbuf.data() + i * Codec::Size());
    return raw_.UpdateBatch(keys.data(), vbuf.data(), static_cast<uint32_t>(keys.size()), sizeof(K),
                            Codec::Size());
  }
  /// Deletes the keys present; returns how many were deleted.
  absl::StatusOr<size_t> DeleteBatch(std::span<const K> keys) {
    if (keys.empty()) return size_t{0};
    return raw_.DeleteBatch(keys.data(), static_cast<uint32_t>(keys.size()), sizeof(K));
  }
  /// Calls fn(key, value) for each element until it returns false.
  absl::Status ForEach(const std::function<bool(const K&, const V&)>& fn) const {
    return raw_.ForEach(sizeof(K), Codec::Size(), [&](const void* k, const void* v) {
      K key;
      std::memcpy(&key, k, sizeof(K));
      V value;
      Codec::Decode(static_cast<const uint8_t*>(v), &value);
      return fn(key, value);
    });
  }
  /// Every element.
  absl::StatusOr<std::vector<std::pair<K, V>>> Dump() const {
    std::vector<std::pair<K, V>> out;
    CNINET_RETURN_IF_ERROR(ForEach([&](const K& k, const V& v) {
      out.emplace_back(k, v);
      return true;
    }));
    return out;
  }
  /// Number of elements (counted by iteration; arrays always report max_entries).
  absl::StatusOr<size_t> Size() const {
    size_t n = 0;
    CNINET_RETURN_IF_ERROR(ForEach([&](const K&, const V&) {
      ++n;
      return true;
    }));
    return n;
  }
  /// Kernel facts captured when wrapping.
  const MapInfo& info() const { return info_; }
  /// The untyped map.
  const RawMap& raw() const { return raw_; }

 private:
  static std::string StrCatSizes(const std::string& name, uint32_t ks, uint32_t vs, size_t wk,
                                 size_t wv) {
    return "map " + name + " has key/value size " + std::to_string(ks) + "/" + std::to_string(vs) +
           ", expected " + std::to_string(wk) + "/" + std::to_string(wv) +
           " (pinned by a version with another map layout? remove the pinned maps: "
           "cninet-dp unpin, or tear the instance down)";
  }
  RawMap raw_;
  MapInfo info_;
};

}  // namespace cninet::datapath

#endif  // CNINET_DATAPATH_MAP_H_
