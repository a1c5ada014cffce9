"""Conan 2 recipe for cninet.

One Conan component per cninet component; the CMake target names match the ones cninet's own
cninetConfig.cmake exports (cninet::cni, cninet::ipam, ...), so consumers write the same
find_package()/target_link_libraries() lines with either. scripts/check-packaging.py checks
that this recipe, the vcpkg port and the CMake build agree on components and dependencies (it
also runs this recipe's methods with a stand-in for Conan); tests/install builds test_package
against an install prefix through the config CMakeDeps would generate from package_info() below
(tests/install/conan_deps.py).

Build host needs: the datapath component compiles its eBPF programs with clang (-target bpf)
and embeds them with bpftool (`bpftool gen skeleton`); both must be on PATH.
Usage: conan create conan/ [-o cninet/*:with_agent=False ...]
"""
import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load

required_conan_version = ">=2.0"

# cninet component -> (cninet components it requires, Conan requirements it uses).
COMPONENTS = {
    "base": ([], ["abseil::abseil"]),
    "cni": (["base"], ["abseil::abseil", "nlohmann_json::nlohmann_json"]),
    "ipam": (["cni"], []),
    "netlink": (["cni"], ["libnl::libnl"]),
    "datapath": (["cni"], ["libbpf::libbpf"]),
    "agent": (["cni", "ipam", "netlink", "datapath"], ["protobuf::libprotobuf"]),
}
# Optional parts of a component: (component, option, requirements).
OPTIONAL_PARTS = [("agent", "with_etcd", ["grpc::grpc++"])]
# What the package is built from: the checkout this recipe lives in (conan/ is one level down).
SOURCES = ("CMakeLists.txt", "CMakePresets.json", "LICENSE", "cmake/*", "include/*", "src/*",
           "bpf/*", "proto/*")


class CninetConan(ConanFile):
    name = "cninet"
    description = "Embeddable C++ SDK for Kubernetes CNI plugins and eBPF datapaths"
    license = "Apache-2.0"
    topics = ("cni", "kubernetes", "ebpf", "networking", "container")
    package_type = "library"
    settings = "os", "arch", "compiler", "build_type"
    options = {
        "shared": [True, False],
        "fPIC": [True, False],
        "with_ipam": [True, False],
        "with_netlink": [True, False],
        "with_datapath": [True, False],
        "with_agent": [True, False],
        "with_etcd": [True, False],
    }
    default_options = {
        "shared": False,
        "fPIC": True,
        "with_ipam": True,
        "with_netlink": True,
        "with_datapath": True,
        "with_agent": True,
        "with_etcd": True,
    }

    def set_version(self):
        # The version lives in one place: project(cninet VERSION x.y.z) in CMakeLists.txt.
        text = load(self, os.path.join(self.recipe_folder, "..", "CMakeLists.txt"))
        self.version = re.search(r"project\(cninet\s+VERSION\s+([0-9.]+)", text).group(1)

    def export_sources(self):
        root = os.path.join(self.recipe_folder, "..")
        for pattern in SOURCES:
            copy(self, pattern, root, self.export_sources_folder)

    def configure(self):
        if self.options.shared:
            self.options.rm_safe("fPIC")
        if not self.options.with_agent:
            self.options.rm_safe("with_etcd")

    def _enabled(self):
        enabled = ["base", "cni"]
        for c in ("ipam", "netlink", "datapath", "agent"):
            if self.options.get_safe("with_" + c):
                enabled.append(c)
        return enabled

    def validate(self):
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration("cninet targets Linux only (netns, netlink, eBPF)")
        check_min_cppstd(self, 20)
        if self.options.with_agent and not all(
                self.options.get_safe("with_" + c) for c in ("ipam", "netlink", "datapath")):
            raise ConanInvalidConfiguration(
                "with_agent needs with_ipam, with_netlink and with_datapath")

    def requirements(self):
        self.requires("abseil/20230802.1", transitive_headers=True)
        self.requires("nlohmann_json/3.11.3", transitive_headers=True)
        if self.options.with_netlink:
            self.requires("libnl/3.8.0")
        if self.options.with_datapath:
            self.requires("libbpf/1.3.0")
        if self.options.with_agent:
            self.requires("protobuf/3.21.12", transitive_headers=True)
            if self.options.get_safe("with_etcd"):
                self.requires("grpc/1.54.3")

    def build_requirements(self):
        self.tool_requires("cmake/[>=3.25]")
        if self.options.with_agent:
            self.tool_requires("protobuf/<host_version>")

    def layout(self):
        cmake_layout(self)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["CNINET_BUILD_TESTS"] = False
        tc.cache_variables["CNINET_BUILD_EXAMPLES"] = False
        tc.cache_variables["CNINET_BUILD_PLUGINS"] = False
        tc.cache_variables["CNINET_BUILD_TOOLS"] = False
        tc.cache_variables["CNINET_BUILD_BENCH"] = False
        for c in ("ipam", "netlink", "datapath", "agent"):
            tc.cache_variables["CNINET_WITH_" + c.upper()] = bool(self.options.get_safe("with_" + c))
        tc.cache_variables["CNINET_WITH_ETCD"] = bool(self.options.get_safe("with_etcd", False))
        tc.generate()
        CMakeDeps(self).generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        CMake(self).install()

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "cninet")
        self.cpp_info.set_property("cmake_target_name", "cninet::cninet")
        self.cpp_info.set_property("pkg_config_name", "cninet")
        for name in self._enabled():
            deps, reqs = COMPONENTS[name]
            comp = self.cpp_info.components[name]
            comp.set_property("cmake_target_name", "cninet::" + name)
            comp.set_property("pkg_config_name", "cninet-" + name)
            comp.libs = ["cninet_" + name]
            comp.requires = list(deps) + list(reqs)
            for part_component, option, part_reqs in OPTIONAL_PARTS:
                if part_component == name and self.options.get_safe(option):
                    comp.requires += part_reqs
            if name in ("cni", "ipam", "netlink", "agent"):
                comp.system_libs = ["pthread"]
