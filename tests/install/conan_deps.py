#!/usr/bin/env python3
"""Writes what Conan's CMakeDeps would generate for the cninet package, from the recipe itself.

Conan cannot be installed here. What is real and what stands in for Conan:
- real: conan/conanfile.py itself - its option logic, validate(), requirements() and
  package_info() run unchanged (through the stand-in for the `conan` Python package in
  scripts/check-packaging.py); the package folder is a real `cmake --install` of cninet (what
  the recipe's package() does), given as PACKAGE_FOLDER;
- stand-in for CMakeDeps: this script turns the recipe's cpp_info into `cninet-config.cmake`
  and `cninet-config-version.cmake` the way CMakeDeps does - one INTERFACE IMPORTED target per
  Conan component named by its `cmake_target_name`, linking the component's `libs` (looked up in
  its `libdirs` of the package folder), its `system_libs`, the targets of the cninet components
  it `requires`, and the targets of the packages it requires; the package-level target
  (cninet::cninet) links every component. No per-component _FOUND variables, COMPONENTS are not
  checked (CMakeDeps' defaults);
- stand-in for the third-party Conan packages: this machine's Debian packages (THIRD_PARTY
  below); `abseil::abseil` means the whole Abseil package, as in Conan, so it links every
  absl:: target.
Nothing reads cninet's own cninetConfig.cmake, so a consumer built against OUT links exactly
what the recipe describes: a wrong target name, library name or missing requirement fails its
configure or link.

The recipe's checks that Conan itself makes are repeated: a component requiring a package that
requirements() does not require, or a direct requirement no component uses, is an error.

Usage: conan_deps.py SOURCE_DIR PACKAGE_FOLDER LIBDIR OUT [option=True|False ...]
  LIBDIR: where PACKAGE_FOLDER holds the libraries (CMAKE_INSTALL_LIBDIR of the install); Conan's
  CMakeToolchain installs into lib/, so a recipe libdirs entry "lib" is looked up there.
"""
import importlib.util
import os
import sys

# Conan requirement -> (CMake code finding this machine's package, the targets it stands for).
# ALL_ABSL: every absl:: target find_package(absl) imported (Conan's abseil::abseil is the whole
# package).
THIRD_PARTY = {
    "abseil::abseil": ("find_package(absl CONFIG REQUIRED)\n"
                       "get_directory_property(_conan_imported IMPORTED_TARGETS)\n"
                       "list(FILTER _conan_imported INCLUDE REGEX \"^absl::\")\n"
                       "if(NOT _conan_imported)\n"
                       "  message(FATAL_ERROR \"find_package(absl) imported no absl:: targets\")\n"
                       "endif()\n"
                       "set(CONAN_ALL_ABSL \"${_conan_imported}\")",
                       ["${CONAN_ALL_ABSL}"]),
    "nlohmann_json::nlohmann_json": ("find_package(nlohmann_json CONFIG REQUIRED)",
                                     ["nlohmann_json::nlohmann_json"]),
    "libnl::libnl": ("find_package(PkgConfig REQUIRED)\n"
                     "pkg_check_modules(CONAN_LIBNL REQUIRED IMPORTED_TARGET libnl-3.0 libnl-route-3.0)",
                     ["PkgConfig::CONAN_LIBNL"]),
    "libbpf::libbpf": ("find_package(PkgConfig REQUIRED)\n"
                       "pkg_check_modules(CONAN_LIBBPF REQUIRED IMPORTED_TARGET libbpf)",
                       ["PkgConfig::CONAN_LIBBPF"]),
    "protobuf::libprotobuf": ("find_package(Protobuf REQUIRED)", ["protobuf::libprotobuf"]),
    "grpc::grpc++": ("find_package(gRPC CONFIG REQUIRED)", ["gRPC::grpc++"]),
}


def load_checker(source_dir):
    """scripts/check-packaging.py as a module (it holds the stand-in for `conan`)."""
    path = os.path.join(source_dir, "scripts", "check-packaging.py")
    spec = importlib.util.spec_from_file_location("check_packaging", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_options(args):
    options = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or value not in ("True", "False"):
            sys.exit(f"conan_deps.py: option {arg!r} is not name=True|False")
        options[key] = value == "True"
    return options


def component_order(info):
    """Component names, each after the components it requires; exits on a cycle or on a
    requirement of a component that does not exist."""
    order, pending = [], list(info.components)
    for name in pending:
        for req in info.components[name].requires:
            if "::" not in req and req not in info.components:
                sys.exit(f"conan_deps.py: component {name} requires unknown component {req}")
    while pending:
        ready = [n for n in pending
                 if all(r in order for r in info.components[n].requires if "::" not in r)]
        if not ready:
            sys.exit(f"conan_deps.py: cycle among components {pending}")
        order += ready
        pending = [n for n in pending if n not in ready]
    return order


def check_requirements(recipe, info):
    """What Conan checks between requirements() and package_info()."""
    used = set()
    for name, comp in info.components.items():
        for req in comp.requires:
            if "::" not in req:
                continue
            pkg = req.split("::")[0]
            if pkg not in recipe.required:
                sys.exit(f"conan_deps.py: component {name} requires {req}, but requirements() "
                         f"does not require {pkg}")
            if req not in THIRD_PARTY:
                sys.exit(f"conan_deps.py: no stand-in for Conan requirement {req}")
            used.add(pkg)
    unused = sorted(set(recipe.required) - used)
    if unused:
        sys.exit(f"conan_deps.py: requirements() requires {unused}, which no component's requires uses")


def find_library(package_folder, libdir, comp, lib, shared):
    """The file of `lib` in the component's libdirs (static or shared, per the option)."""
    dirs = [os.path.join(package_folder, libdir if d == "lib" else d) for d in comp.libdirs]
    names = [f"lib{lib}.so", f"lib{lib}.a"] if shared else [f"lib{lib}.a", f"lib{lib}.so"]
    for d in dirs:
        for n in names:
            if os.path.exists(os.path.join(d, n)):
                return os.path.join(d, n)
    return None


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    source_dir, package_folder, libdir, out = sys.argv[1:5]
    options = parse_options(sys.argv[5:])
    recipe = load_checker(source_dir).run_conan_recipe(source_dir, options)
    info = recipe.cpp_info
    if not info.components:
        sys.exit("conan_deps.py: package_info() declares no components")
    check_requirements(recipe, info)
    shared = bool(recipe.options.get_safe("shared", False))

    lines = [
        f"# Generated by tests/install/conan_deps.py from conan/conanfile.py "
        f"(cninet/{recipe.version}, options {sorted(options.items())}), as CMakeDeps would.",
        "include_guard(GLOBAL)",
    ]
    finds = []
    for comp in info.components.values():
        for req in comp.requires:
            if "::" in req and THIRD_PARTY[req][0] not in finds:
                finds.append(THIRD_PARTY[req][0])
    lines += finds

    order = component_order(info)
    for name in order:
        comp = info.components[name]
        target = comp.properties.get("cmake_target_name")
        if not target:
            sys.exit(f"conan_deps.py: component {name} has no cmake_target_name")
        link = []
        for lib in comp.libs:
            path = find_library(package_folder, libdir, comp, lib, shared)
            if not path:
                sys.exit(f"conan_deps.py: component {name}: library {lib} not in the package "
                         f"({package_folder}, libdirs {comp.libdirs})")
            link.append(path)
        for req in comp.requires:
            if "::" in req:
                link += THIRD_PARTY[req][1]
            else:
                link.append(info.components[req].properties["cmake_target_name"])
        link += comp.system_libs
        includes = [os.path.join(package_folder, d) for d in comp.includedirs]
        lines += [
            f"add_library({target} INTERFACE IMPORTED)",
            f"set_target_properties({target} PROPERTIES",
            f'  INTERFACE_INCLUDE_DIRECTORIES "{";".join(includes)}"',
            f'  INTERFACE_COMPILE_DEFINITIONS "{";".join(comp.defines)}"',
            f'  INTERFACE_LINK_LIBRARIES "{";".join(link)}")',
        ]
    umbrella = info.properties.get("cmake_target_name")
    if umbrella:
        targets = ";".join(info.components[n].properties["cmake_target_name"] for n in order)
        lines += [f"add_library({umbrella} INTERFACE IMPORTED)",
                  f'set_target_properties({umbrella} PROPERTIES INTERFACE_LINK_LIBRARIES "{targets}")']
    file_name = info.properties.get("cmake_file_name", recipe.name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{file_name}-config.cmake"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, f"{file_name}-config-version.cmake"), "w") as f:
        # CMakeDeps' default: SameMajorVersion.
        major = recipe.version.split(".")[0]
        f.write(f'set(PACKAGE_VERSION "{recipe.version}")\n'
                "if(PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)\n"
                "  set(PACKAGE_VERSION_COMPATIBLE FALSE)\n"
                f'elseif(PACKAGE_FIND_VERSION_MAJOR STREQUAL "{major}")\n'
                "  set(PACKAGE_VERSION_COMPATIBLE TRUE)\n"
                "else()\n"
                "  set(PACKAGE_VERSION_COMPATIBLE FALSE)\n"
                "endif()\n"
                "if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)\n"
                "  set(PACKAGE_VERSION_EXACT TRUE)\n"
                "endif()\n")
    print(f"{out}/{file_name}-config.cmake: components {', '.join(order)} "
          f"({'shared' if shared else 'static'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
