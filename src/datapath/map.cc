#include "cninet/datapath/map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "cninet/base/status.h"
#include "cninet/base/strings.h"

namespace cninet::datapath {
namespace {

uint64_t ModeFlags(UpdateMode mode) {
  switch (mode) {
    case UpdateMode::kNoExist:
      return BPF_NOEXIST;
    case UpdateMode::kExist:
      return BPF_EXIST;
    default:
      return BPF_ANY;
  }
}

constexpr int kENOTSUPP = 524;  // kernel-internal "operation not supported"

// libbpf returns -errno (libbpf_strict) and also sets errno.
int Err(int ret) { return ret < 0 ? -ret : errno; }

}  // namespace

int PossibleCpus() {
  static const int n = [] {
    int c = libbpf_num_possible_cpus();
    return c > 0 ? c : 1;
  }();
  return n;
}

RawMap::~RawMap() {
  if (fd_ >= 0) close(fd_);
}

RawMap& RawMap::operator=(RawMap&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

absl::StatusOr<RawMap> RawMap::OpenPinned(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return ErrnoStatus(Err(fd), StrCat("open pinned map ", path));
  return RawMap(fd);
}

RawMap RawMap::Adopt(int fd) { return RawMap(fd); }

absl::StatusOr<RawMap> RawMap::Dup() const {
  int fd = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "dup map fd");
  return RawMap(fd);
}

absl::StatusOr<MapInfo> RawMap::Info() const {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  int ret = bpf_obj_get_info_by_fd(fd_, &info, &len);
  if (ret < 0) return ErrnoStatus(Err(ret), "bpf map info");
  MapInfo out;
  out.type = info.type;
  out.key_size = info.key_size;
  out.value_size = info.value_size;
  out.max_entries = info.max_entries;
  out.flags = info.map_flags;
  out.id = info.id;
  out.name = info.name;
  return out;
}

absl::Status RawMap::Lookup(const void* key, void* value) const {
  int ret = bpf_map_lookup_elem(fd_, key, value);
  if (ret < 0) {
    int e = Err(ret);
    if (e == ENOENT) return absl::NotFoundError("no such key");
    return ErrnoStatus(e, "bpf map lookup");
  }
  return absl::OkStatus();
}

absl::Status RawMap::Update(const void* key, const void* value, UpdateMode mode) {
  int ret = bpf_map_update_elem(fd_, key, value, ModeFlags(mode));
  if (ret < 0) {
    int e = Err(ret);
    if (e == EEXIST) return absl::AlreadyExistsError("key exists");
    if (e == ENOENT) return absl::NotFoundError("no such key");
    if (e == E2BIG || e == ENOMEM) return absl::ResourceExhaustedError("bpf map full");
    return ErrnoStatus(e, "bpf map update");
  }
  return absl::OkStatus();
}

absl::Status RawMap::Delete(const void* key) {
  int ret = bpf_map_delete_elem(fd_, key);
  if (ret < 0) {
    int e = Err(ret);
    if (e == ENOENT) return absl::NotFoundError("no such key");
    return ErrnoStatus(e, "bpf map delete");
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> RawMap::NextKey(const void* key, void* next) const {
  int ret = bpf_map_get_next_key(fd_, key, next);
  if (ret < 0) {
    int e = Err(ret);
    if (e == ENOENT) return false;
    return ErrnoStatus(e, "bpf map next key");
  }
  return true;
}

absl::Status RawMap::UpdateBatch(const void* keys, const void* values, uint32_t count,
                                 uint32_t key_size, uint32_t value_size) {
  const auto* k = static_cast<const uint8_t*>(keys);
  const auto* v = static_cast<const uint8_t*>(values);
  uint32_t done = 0;
  while (done < count) {
    uint32_t n = count - done;
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
    int ret = bpf_map_update_batch(fd_, k + size_t{done} * key_size, v + size_t{done} * value_size,
                                   &n, &opts);
    if (ret == 0) {
      done += n;
      continue;
    }
    int e = Err(ret);
    if (e == EINVAL || e == ENOTSUP || e == EOPNOTSUPP || e == kENOTSUPP) {
      // No batch support for this map type: one by one.
      for (uint32_t i = done; i < count; ++i) {
        CNINET_RETURN_IF_ERROR(Update(k + size_t{i} * key_size, v + size_t{i} * value_size));
      }
      return absl::OkStatus();
    }
    if (e == E2BIG || e == ENOMEM)
      return absl::ResourceExhaustedError("bpf map full (batch update)");
    return ErrnoStatus(e, "bpf map update batch");
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> RawMap::DeleteBatch(const void* keys, uint32_t count, uint32_t key_size) {
  const auto* k = static_cast<const uint8_t*>(keys);
  size_t deleted = 0;
  for (uint32_t i = 0; i < count; ++i) {
    absl::Status s = Delete(k + size_t{i} * key_size);
    if (s.ok()) {
      ++deleted;
    } else if (!absl::IsNotFound(s)) {
      return s;
    }
  }
  return deleted;
}

absl::Status RawMap::ForEach(uint32_t key_size, uint32_t value_size,
                             const std::function<bool(const void*, const void*)>& fn) const {
  // Batched lookups (hash maps); fall back to get_next_key iteration when unsupported.
  constexpr uint32_t kChunk = 4096;
  std::vector<uint8_t> keys(size_t{kChunk} * key_size), values(size_t{kChunk} * value_size);
  std::vector<uint8_t> in_batch(std::max<uint32_t>(key_size, 8)),
      out_batch(std::max<uint32_t>(key_size, 8));
  bool first = true;
  bool batch_ok = true;
  while (true) {
    uint32_t n = kChunk;
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
    int ret = bpf_map_lookup_batch(fd_, first ? nullptr : in_batch.data(), out_batch.data(),
                                   keys.data(), values.data(), &n, &opts);
    int e = ret < 0 ? Err(ret) : 0;
    if (ret < 0 && e != ENOENT) {
      if (first && (e == EINVAL || e == ENOTSUP || e == EOPNOTSUPP || e == kENOTSUPP)) {
        batch_ok = false;
        break;
      }
      return ErrnoStatus(e, "bpf map lookup batch");
    }
    for (uint32_t i = 0; i < n; ++i) {
      if (!fn(keys.data() + size_t{i} * key_size, values.data() + size_t{i} * value_size))
        return absl::OkStatus();
    }
    if (e == ENOENT) return absl::OkStatus();
    std::memcpy(in_batch.data(), out_batch.data(), out_batch.size());
    first = false;
  }
  if (batch_ok) return absl::OkStatus();
  std::vector<uint8_t> key(key_size), next(key_size), value(value_size);
  bool have = false;
  while (true) {
    CNINET_ASSIGN_OR_RETURN(bool more, NextKey(have ? key.data() : nullptr, next.data()));
    if (!more) return absl::OkStatus();
    key = next;
    have = true;
    absl::Status s = Lookup(key.data(), value.data());
    if (absl::IsNotFound(s)) continue;  // deleted meanwhile
    CNINET_RETURN_IF_ERROR(s);
    if (!fn(key.data(), value.data())) return absl::OkStatus();
  }
}

}  // namespace cninet::datapath
