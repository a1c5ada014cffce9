// SHA-512 (FIPS 180-4), used only to derive cnitool-compatible container IDs.
#ifndef CNINET_EXAMPLES_CNI_TOOL_SHA512_H_
#define CNINET_EXAMPLES_CNI_TOOL_SHA512_H_

#include <array>
#include <cstdint>
#include <string_view>

namespace cninet::tool {

// The 64-byte SHA-512 digest of `data`.
std::array<uint8_t, 64> Sha512(std::string_view data);

}  // namespace cninet::tool

#endif  // CNINET_EXAMPLES_CNI_TOOL_SHA512_H_
