/// @file
/// The CNI result types, named after the spec: Result, Interface, IPConfig, Route, DNS.
///
/// A Result is version-neutral in memory (it holds the 1.1.0 fields). Parse accepts any supported
/// version; ToJson emits the requested one, applying the spec's/libcni's conversion rules:
///   * 0.3.x / 0.4.0 add `"version": "4"|"6"` to every IP (derived from the address);
///   * versions before 1.1.0 drop the 1.1 fields (interface mtu/socketPath/pciID and route
///     mtu/advmss/priority/table/scope) - the documented loss when converting down;
///   * an empty `dns` object is omitted.
/// Unknown fields at every level are kept in `extra` and written back (chaining must not lose
/// them).
#ifndef CNINET_CNI_TYPES_H_
#define CNINET_CNI_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cninet/cni/ip.h"
#include "nlohmann/json.hpp"

namespace cninet::cni {

/// An interface created by the attachment (in the sandbox, or on the host when sandbox is empty).
struct Interface {
  std::string name;             ///< Interface name (in the sandbox when `sandbox` is set).
  std::string mac;              ///< "aa:bb:cc:dd:ee:ff" or empty.
  std::optional<uint32_t> mtu;  ///< 1.1.0+.
  std::string sandbox;          ///< CNI_NETNS for container-side interfaces, "" on the host.
  std::string socket_path;      ///< 1.1.0+: vhost-user style socket, if any.
  std::string pci_id;           ///< 1.1.0+: PCI device, if any.
  nlohmann::json extra = nlohmann::json::object();  ///< Unknown fields, passed through.

  /// Field-wise equality.
  friend bool operator==(const Interface&, const Interface&) = default;
};

/// An address assigned by the attachment.
struct IPConfig {
  IPPrefix address;                  ///< "10.1.0.5/24": address and its subnet's prefix length.
  std::optional<IPAddress> gateway;  ///< Default gateway for this address, if any.
  std::optional<int> interface;      ///< Index into Result::interfaces (absent for IPAM results).
  nlohmann::json extra = nlohmann::json::object();  ///< Unknown fields, passed through.

  /// Field-wise equality.
  friend bool operator==(const IPConfig&, const IPConfig&) = default;
};

/// A route created by the attachment.
struct Route {
  IPPrefix dst;                      ///< Destination prefix.
  std::optional<IPAddress> gw;       ///< Next hop; absent: the IPConfig's gateway (or on-link).
  std::optional<uint32_t> mtu;       ///< 1.1.0+.
  std::optional<uint32_t> advmss;    ///< 1.1.0+.
  std::optional<uint32_t> priority;  ///< 1.1.0+; lower is preferred.
  std::optional<uint32_t> table;     ///< 1.1.0+.
  std::optional<uint32_t> scope;     ///< 1.1.0+: 0 global, 253 link, 254 host.
  nlohmann::json extra = nlohmann::json::object();  ///< Unknown fields, passed through.

  /// Field-wise equality.
  friend bool operator==(const Route&, const Route&) = default;
};

/// Resolver configuration.
struct DNS {
  std::vector<std::string> nameservers;             ///< Server addresses, in order of preference.
  std::string domain;                               ///< Local domain for short names.
  std::vector<std::string> search;                  ///< Search domains.
  std::vector<std::string> options;                 ///< Resolver options (resolv.conf "options").
  nlohmann::json extra = nlohmann::json::object();  ///< Unknown fields, passed through.

  /// True when no field is set (the result omits "dns").
  bool empty() const;
  /// Field-wise equality.
  friend bool operator==(const DNS&, const DNS&) = default;
  /// Parses a "dns" object; wrong types are code 6.
  static absl::StatusOr<DNS> FromJson(const nlohmann::json& j);
  /// The "dns" object (empty fields omitted).
  nlohmann::json ToJson() const;
};

/// The result of ADD (and the prevResult of chained plugins).
struct Result {
  std::string cni_version;  ///< Version it was parsed from / will default to when emitted.
  std::vector<Interface> interfaces;  ///< Interfaces created, referenced by index from `ips`.
  std::vector<IPConfig> ips;          ///< Addresses assigned.
  std::vector<Route> routes;          ///< Routes created.
  DNS dns;                            ///< Resolver configuration.
  nlohmann::json extra = nlohmann::json::object();  ///< Unknown top-level fields, passed through.

  /// Parses a result object of any supported version. Errors carry CNI code 6 (decode) or 1
  /// (unsupported version).
  static absl::StatusOr<Result> FromJson(const nlohmann::json& j);
  /// Parses result text.
  static absl::StatusOr<Result> Parse(std::string_view text);
  /// The object for `version` (default: cni_version). Fails with code 1 for unsupported versions
  /// and with code 7 when the result is invalid (see Validate).
  absl::StatusOr<nlohmann::json> ToJson(std::string_view version = {}) const;
  /// ToJson(version).dump().
  absl::StatusOr<std::string> ToString(std::string_view version = {}) const;
  /// Checks that every IP's interface index refers to an entry of `interfaces`.
  absl::Status Validate() const;

  /// Field-wise equality.
  friend bool operator==(const Result&, const Result&) = default;
};

}  // namespace cninet::cni

#endif  // CNINET_CNI_TYPES_H_
