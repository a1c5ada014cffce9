/// @file
/// UniqueFd: the one owned file-descriptor type of cninet (closed when it goes out of scope).
#ifndef CNINET_BASE_FD_H_
#define CNINET_BASE_FD_H_

#include <utility>

namespace cninet {

/// Owns a file descriptor and closes it on destruction. Move-only; -1 means "none".
class UniqueFd {
 public:
  UniqueFd() = default;
  /// Takes ownership of `fd` (may be -1).
  explicit UniqueFd(int fd) : fd_(fd) {}
  /// Takes over `other`'s descriptor; `other` becomes empty.
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  /// Closes the held descriptor and takes over `other`'s.
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  /// The descriptor, still owned (-1 when empty).
  int get() const { return fd_; }
  /// True when a descriptor is held.
  bool valid() const { return fd_ >= 0; }
  /// Same as valid().
  explicit operator bool() const { return valid(); }
  /// Closes the held descriptor (if any) and takes `fd`.
  void Reset(int fd = -1);
  /// Gives up ownership without closing; returns the descriptor.
  [[nodiscard]] int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

}  // namespace cninet

#endif  // CNINET_BASE_FD_H_
