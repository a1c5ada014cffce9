/// @file
/// CNI error codes and the single conversion between absl::Status and the spec's error JSON.
///
/// Any cninet call may fail with a plain absl::Status; a status that carries a CNI code (built with
/// CniError) keeps it through Annotate() and is reported to the runtime with that code.
#ifndef CNINET_CNI_ERROR_H_
#define CNINET_CNI_ERROR_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace cninet::cni {

/// Error codes from the CNI SPEC ("Error" section). 0-99 are reserved by the spec;
/// plugins may use 100 and above for their own errors.
enum class ErrorCode : uint32_t {
  kIncompatibleVersion = 1,   ///< Incompatible CNI version.
  kUnsupportedField = 2,      ///< Unsupported field in network configuration (names key and value).
  kUnknownContainer = 3,      ///< Container unknown or does not exist; no cleanup needed.
  kInvalidEnvironment = 4,    ///< Invalid necessary environment variables (names them).
  kIoFailure = 5,             ///< I/O failure, e.g. reading stdin.
  kDecodeFailure = 6,         ///< Failed to decode content (JSON, version string).
  kInvalidConfig = 7,         ///< Invalid network configuration.
  kInvalidNetns = 8,          ///< CNI_NETNS is not a usable namespace (libcni's ErrInvalidNetNS).
  kTryAgainLater = 11,        ///< Transient condition; the runtime should retry later.
  kNotAvailable = 50,         ///< STATUS: plugin cannot service ADD requests.
  kLimitedConnectivity = 51,  ///< STATUS: not available, and existing containers may be affected.
  kPluginSpecific = 100,      ///< First plugin-specific code.
  // cninet's plugin-specific codes (>= 100), shared by every plugin of cninet:
  kCheckMismatch = 100,     ///< CHECK found state differing from prevResult or the plugin's record.
  kNoHostInterface = 101,   ///< No host-side interface (veth peer) for the pod interface.
  kHostPortConflict = 102,  ///< A hostPort (address, port, protocol) is already taken.
  kDatapathFailure = 103,   ///< Loading, attaching or programming the eBPF datapath failed.
  kInternal = 999,          ///< Generic failure without a more specific code (as libcni uses).
};

/// Short spec description of a code ("Incompatible CNI version"), or "Plugin error" for >= 100.
std::string_view ErrorCodeDescription(uint32_t code);

/// A status carrying CNI error `code`; `msg` becomes the JSON "msg", `details` the "details".
absl::Status CniError(ErrorCode code, std::string_view msg, std::string_view details = {});
/// Same, for plugin-specific codes (>= 100).
absl::Status CniError(uint32_t code, std::string_view msg, std::string_view details = {});

/// The CNI code of `status`: its payload when present; otherwise InvalidArgument maps to 7,
/// Unavailable to 11, NotFound to 3 ... and anything else to 999. OK maps to 0.
uint32_t GetErrorCode(const absl::Status& status);

/// The "details" recorded by CniError, or "" when none.
std::string GetErrorDetails(const absl::Status& status);

/// The spec's error object {"cniVersion","code","msg","details"} for a non-OK `status`.
nlohmann::json ErrorToJson(const absl::Status& status, std::string_view cni_version);

/// Parses an error object a plugin printed; returns the status it describes (never OK).
/// Text that is not an error object yields code 999 with the text as message.
absl::Status ErrorFromJson(std::string_view text);

}  // namespace cninet::cni

#endif  // CNINET_CNI_ERROR_H_
