#!/usr/bin/env python3
"""Checks that the CMake build, the Conan recipe and the vcpkg port agree.

What must agree: the set of components, each component's dependencies on other components, each
component's third-party dependencies (normalized names), the optional etcd part, the version, and
the CMake options the vcpkg features and Conan options switch. Beyond comparing them it

- reads the CMake side from the cninet_add_component() calls, expanding the variables their
  arguments use (set()/list(APPEND) anywhere in the file: the build with every optional part on);
- validates ports/cninet/vcpkg.json against the manifest fields the port uses (JSON schema);
- runs the Conan recipe (with a stand-in for the `conan` package, which is not installed here):
  set_version(), the option logic, requirements() and package_info() for the default options
  and for a cni-only build, and checks every Conan component's CMake target, library and
  requirements;
- with --build DIR, checks that a configured build tree (its generated cninetConfig.cmake) has
  the components and dependencies the sources declare.

Usage:
  check-packaging.py [--root DIR] [--build DIR]   exit 0 when consistent, 1 listing mismatches
  check-packaging.py [--root DIR] --self-test     proves the check fails when one place changes
"""
import argparse
import ast
import glob
import json
import os
import re
import shutil
import sys
import tempfile
import types

COMPONENT_ORDER = ["base", "cni", "ipam", "netlink", "datapath", "agent"]
CORE = ("base", "cni")  # Always built; no option switches them.

# Third-party names as each packaging system spells them -> one normalized name.
NORMALIZE = [
    (re.compile(r"absl|abseil", re.I), "abseil"),
    (re.compile(r"nlohmann", re.I), "nlohmann_json"),
    (re.compile(r"libbpf", re.I), "libbpf"),
    (re.compile(r"libnl", re.I), "libnl"),
    (re.compile(r"grpc", re.I), "grpc"),
    (re.compile(r"protobuf", re.I), "protobuf"),
]
OPTIONAL = {"grpc": ("agent", "etcd")}  # Third-party dep that forms an optional part of a component.

# The vcpkg manifest fields the port uses, as vcpkg defines them.
VCPKG_SCHEMA = {
    "type": "object",
    "required": ["name", "version", "description", "license", "dependencies", "features"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
        "version": {"type": "string", "pattern": r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$"},
        "port-version": {"type": "integer", "minimum": 0},
        "description": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "homepage": {"type": "string"},
        "license": {"type": "string"},
        "supports": {"type": "string"},
        "dependencies": {"type": "array", "items": {"$ref": "#/$defs/dependency"}},
        "default-features": {"type": "array", "items": {"type": "string"}},
        "features": {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
            "additionalProperties": {
                "type": "object",
                "required": ["description"],
                "properties": {
                    "description": {"type": "string"},
                    "dependencies": {"type": "array", "items": {"$ref": "#/$defs/dependency"}},
                    "supports": {"type": "string"},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
    "$defs": {
        "dependency": {
            "anyOf": [
                {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
                {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
                        "host": {"type": "boolean"},
                        "default-features": {"type": "boolean"},
                        "features": {"type": "array", "items": {"type": "string"}},
                        "platform": {"type": "string"},
                        "version>=": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
            ]
        }
    },
}


def normalize(dep):
    for rx, name in NORMALIZE:
        if rx.search(dep):
            return name
    return None


# ---- CMake ----

def cmake_tokens(text):
    """Arguments of a CMake command body: quoted strings and unquoted words."""
    return [t[1:-1] if t.startswith('"') else t for t in re.findall(r'"[^"]*"|[^\s()]+', text)]


def strip_comments(text):
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.split("\n"))


def cmake_variables(text):
    """Every value each variable may take anywhere in the file (conditions ignored)."""
    values = {}
    for m in re.finditer(r"^\s*(set|list)\s*\((.*?)\)\s*$", text, re.S | re.M):
        args = cmake_tokens(m.group(2))
        if m.group(1) == "set" and args:
            values.setdefault(args[0], []).extend(
                a for a in args[1:] if a not in ("CACHE", "PARENT_SCOPE", "INTERNAL", "STRING"))
        elif m.group(1) == "list" and len(args) >= 2 and args[0] in ("APPEND", "PREPEND"):
            values.setdefault(args[1], []).extend(args[2:])
    return values


def expand(tokens, variables, depth=0):
    out = []
    for t in tokens:
        m = re.fullmatch(r"\$\{(\w+)\}", t)
        if m and depth < 8:
            out.extend(expand(variables.get(m.group(1), []), variables, depth + 1))
        elif "${" not in t:
            out.append(t)
    return out


def cmake_components(root):
    """{name: (component_deps, third_party)} from the cninet_add_component() calls."""
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "src", "*", "CMakeLists.txt"))):
        text = strip_comments(open(path).read())
        variables = cmake_variables(text)
        for m in re.finditer(r"cninet_add_component\((.*?)\)\s*$", text, re.S | re.M):
            sections, cur = {}, None
            for t in cmake_tokens(m.group(1)):
                if re.fullmatch(r"[A-Z_]+", t):
                    cur = t
                    sections.setdefault(cur, [])
                elif cur:
                    sections[cur].append(t)
            sections = {k: expand(v, variables) for k, v in sections.items()}
            name = (sections.get("NAME") or [None])[0]
            deps = set(sections.get("COMPONENT_DEPS", []))
            third = set()
            for key in ("FIND_DEPS", "PKG_DEPS", "PUBLIC_LIBS", "PRIVATE_LIBS"):
                for t in sections.get(key, []):
                    if t.startswith("cninet"):
                        continue
                    n = normalize(t)
                    if n:
                        third.add(n)
            out[name] = (deps, third)
    return out


def build_components(build):
    """{name: (component_deps, third_party)} from a configured build's cninetConfig.cmake."""
    path = os.path.join(build, "cninetConfig.cmake")
    text = open(path).read()
    sets = dict(re.findall(r'^set\((_cninet_\w+) "([^"]*)"\)', text, re.M))
    available = [c for c in sets.get("_cninet_available", "").split(";") if c]
    out = {}
    for c in available:
        deps = {d for d in sets.get(f"_cninet_component_deps_{c}", "").split(";") if d}
        third = set()
        for key in (f"_cninet_find_deps_{c}", f"_cninet_pkg_deps_{c}"):
            for d in sets.get(key, "").split(";"):
                n = normalize(d)
                if n:
                    third.add(n)
        out[c] = (deps, third)
    return out


# ---- Conan ----

def conan_components(root):
    """COMPONENTS and OPTIONAL_PARTS, the recipe's declared dependency table."""
    tree = ast.parse(open(os.path.join(root, "conan", "conanfile.py")).read())
    comps, optional = None, []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "COMPONENTS":
                comps = ast.literal_eval(node.value)
            if node.targets[0].id == "OPTIONAL_PARTS":
                optional = ast.literal_eval(node.value)
    if comps is None:
        raise ValueError("conan/conanfile.py: no COMPONENTS table")
    out = {}
    for name, (deps, reqs) in comps.items():
        third = {normalize(r) for r in reqs} - {None}
        for comp, option, part_reqs in optional:
            if comp == name:
                third |= {normalize(r) for r in part_reqs} - {None}
        out[name] = (set(deps), third)
    options = {opt for _, opt, _ in optional}
    return out, options


class _Options:
    """conan's options object: attribute access, get_safe, rm_safe."""

    def __init__(self, values):
        object.__setattr__(self, "_v", dict(values))

    def __getattr__(self, name):
        try:
            return self._v[name]
        except KeyError:
            raise AttributeError(f"option '{name}' does not exist") from None

    def __setattr__(self, name, value):
        self._v[name] = value

    def get_safe(self, name, default=None):
        return self._v.get(name, default)

    def rm_safe(self, name):
        self._v.pop(name, None)


class _Component:
    def __init__(self):
        self.properties, self.libs, self.requires, self.system_libs = {}, [], [], []
        # Conan's defaults for a package laid out by `cmake --install` with CMakeToolchain.
        self.defines, self.includedirs, self.libdirs = [], ["include"], ["lib"]

    def set_property(self, key, value):
        self.properties[key] = value


class _Components(dict):
    """cpp_info.components: an entry springs into existence when first named."""

    def __missing__(self, key):
        self[key] = _Component()
        return self[key]


class _CppInfo(_Component):
    def __init__(self):
        super().__init__()
        self.components = _Components()


def _conan_stub(recipe_dir):
    """Modules standing in for `conan` so the recipe runs without Conan installed."""

    class ConanFile:
        def __init__(self, options):
            self.options = _Options(options)
            self.settings = types.SimpleNamespace(os="Linux", arch="x86_64", compiler="gcc",
                                                  build_type="Release")
            self.recipe_folder = recipe_dir
            self.cpp_info = _CppInfo()
            self.required = {}
            self.tool_required = []

        def requires(self, ref, **kwargs):
            self.required[ref.split("/")[0]] = (ref, kwargs)

        def tool_requires(self, ref, **kwargs):
            self.tool_required.append(ref)

    def load(conanfile, path, *args, **kwargs):
        with open(path) as f:
            return f.read()

    def _unused(*args, **kwargs):
        raise AssertionError("not called by the check")

    mods = {
        "conan": types.ModuleType("conan"),
        "conan.tools": types.ModuleType("conan.tools"),
        "conan.tools.cmake": types.ModuleType("conan.tools.cmake"),
        "conan.tools.files": types.ModuleType("conan.tools.files"),
        "conan.tools.build": types.ModuleType("conan.tools.build"),
        "conan.errors": types.ModuleType("conan.errors"),
    }
    mods["conan"].ConanFile = ConanFile
    for n in ("CMake", "CMakeDeps", "CMakeToolchain", "cmake_layout"):
        setattr(mods["conan.tools.cmake"], n, _unused)
    mods["conan.tools.files"].copy = _unused
    mods["conan.tools.files"].load = load
    mods["conan.tools.build"].can_run = lambda conanfile: True
    mods["conan.tools.build"].check_min_cppstd = lambda conanfile, v: None

    class ConanInvalidConfiguration(Exception):
        pass

    mods["conan.errors"].ConanInvalidConfiguration = ConanInvalidConfiguration
    mods["conan.errors"].ConanException = Exception
    return mods


def run_conan_recipe(root, options):
    """Runs the recipe's methods for `options` (overriding default_options); returns the
    instance, or raises with the reason."""
    recipe_dir = os.path.join(root, "conan")
    stub = _conan_stub(recipe_dir)
    saved = {k: sys.modules.get(k) for k in stub}
    sys.modules.update(stub)
    try:
        namespace = {"__file__": os.path.join(recipe_dir, "conanfile.py"), "__name__": "conanfile"}
        exec(compile(open(namespace["__file__"]).read(), namespace["__file__"], "exec"), namespace)
        classes = [v for v in namespace.values() if isinstance(v, type)
                   and issubclass(v, stub["conan"].ConanFile) and v is not stub["conan"].ConanFile]
        if len(classes) != 1:
            raise ValueError(f"expected one ConanFile class, found {len(classes)}")
        cls = classes[0]
        values = dict(cls.default_options)
        values.update(options)
        for opt, value in values.items():
            if value not in cls.options.get(opt, []):
                raise ValueError(f"option {opt}={value} is not among {cls.options.get(opt)}")
        recipe = cls(values)
        for method in ("set_version", "config_options", "configure", "validate", "requirements",
                       "build_requirements", "package_info"):
            if hasattr(recipe, method):
                getattr(recipe, method)()
        return recipe
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def check_conan_recipe(root, cmake, version):
    problems = []
    all_off = {f"with_{c}": False for c in COMPONENT_ORDER if c not in CORE}
    for label, options, expected in (("default options", {}, set(cmake)),
                                     ("cni only", all_off, {"base", "cni"})):
        try:
            recipe = run_conan_recipe(root, options)
        except Exception as e:  # The recipe itself is broken: report, do not crash.
            problems.append(f"conan recipe ({label}): {type(e).__name__}: {e}")
            continue
        if getattr(recipe, "version", None) != version:
            problems.append(f"conan recipe: version {getattr(recipe, 'version', None)} vs CMake {version}")
        info = recipe.cpp_info
        if info.properties.get("cmake_file_name") != "cninet":
            problems.append("conan package_info: cmake_file_name is not 'cninet'")
        if info.properties.get("cmake_target_name") != "cninet::cninet":
            problems.append("conan package_info: cmake_target_name is not 'cninet::cninet'")
        got = set(info.components)
        if got != expected:
            problems.append(f"conan package_info ({label}): components {sorted(got)}, expected {sorted(expected)}")
        for name, comp in info.components.items():
            if comp.properties.get("cmake_target_name") != f"cninet::{name}":
                problems.append(f"conan component {name}: cmake_target_name "
                                f"{comp.properties.get('cmake_target_name')!r}, CMake exports cninet::{name}")
            if comp.properties.get("pkg_config_name") != f"cninet-{name}":
                problems.append(f"conan component {name}: pkg_config_name "
                                f"{comp.properties.get('pkg_config_name')!r}, CMake installs cninet-{name}.pc")
            if comp.libs != [f"cninet_{name}"]:
                problems.append(f"conan component {name}: libs {comp.libs}, CMake builds cninet_{name}")
            for req in comp.requires:
                if "::" in req:
                    pkg = req.split("::")[0]
                    if pkg not in recipe.required:
                        problems.append(f"conan component {name} ({label}) requires {req} but "
                                        f"requirements() does not require {pkg}")
                elif req not in info.components:
                    problems.append(f"conan component {name} ({label}) requires missing component {req}")
            if name in cmake:
                deps = {r for r in comp.requires if "::" not in r}
                if deps != cmake[name][0]:
                    problems.append(f"conan component {name} ({label}): requires components "
                                    f"{sorted(deps)} vs CMake {sorted(cmake[name][0])}")
    return problems


# ---- vcpkg ----

def vcpkg_components(root):
    manifest = json.load(open(os.path.join(root, "ports", "cninet", "vcpkg.json")))

    def names(deps):
        return [d if isinstance(d, str) else d["name"] for d in deps]

    base_third = {normalize(d) for d in names(manifest.get("dependencies", []))} - {None}
    # The port's core is base + cni: base needs Abseil only.
    out = {"base": (set(), {"abseil"} & base_third), "cni": ({"base"}, base_third)}
    errors = []
    for feat, spec in manifest.get("features", {}).items():
        deps, third = set(), set()
        for d in spec.get("dependencies", []):
            if isinstance(d, dict) and d.get("name") == "cninet":
                deps |= set(d.get("features", []))
            else:
                n = normalize(d if isinstance(d, str) else d["name"])
                if n:
                    third.add(n)
        out[feat] = (deps, third)
    # Fold optional parts (e.g. "etcd") into their component.
    optional_features = set()
    for dep, (comp, feat) in OPTIONAL.items():
        if feat in out:
            fdeps, fthird = out.pop(feat)
            optional_features.add(feat)
            if comp in out:
                out[comp] = (out[comp][0], out[comp][1] | fthird)
            if comp not in fdeps:
                errors.append(f"vcpkg feature {feat} must depend on cninet[{comp}]")
    # Every feature-component implicitly depends on cni (the core of the port).
    for name, (deps, third) in list(out.items()):
        if name not in CORE:
            out[name] = (deps | {"cni"}, third)
    return out, manifest, optional_features, errors


def check_vcpkg_schema(manifest):
    try:
        import jsonschema
    except ImportError:
        return ["python3-jsonschema is not installed (scripts/deps.sh installs it)"]
    validator = jsonschema.Draft202012Validator(VCPKG_SCHEMA)
    return [f"vcpkg.json: {'/'.join(map(str, e.path)) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))]


# ---- The check ----

def closure(comps):
    """Third-party deps including those inherited through component deps (a component may name
    a library its dependency already brings, e.g. Abseil)."""
    out = {}

    def third(name, seen=()):
        if name not in comps or name in seen:
            return set()
        deps, own = comps[name]
        res = set(own)
        for d in deps:
            res |= third(d, seen + (name,))
        return res

    for name, (deps, _) in comps.items():
        out[name] = (deps, third(name))
    return out


def project_version(root):
    top = open(os.path.join(root, "CMakeLists.txt")).read()
    m = re.search(r"project\(cninet\s+VERSION\s+([0-9.]+)", top)
    return m.group(1) if m else None


def check(root, build=None):
    problems = []
    raw_cmake = cmake_components(root)
    cn, conan_options = conan_components(root)
    vc, manifest, vc_optional, vc_errors = vcpkg_components(root)
    problems += vc_errors
    problems += check_vcpkg_schema(manifest)
    cm, cn, vc = closure(raw_cmake), closure(cn), closure(vc)

    for label, other in (("conan", cn), ("vcpkg", vc)):
        if set(cm) != set(other):
            problems.append(f"components differ: cmake {sorted(cm)} vs {label} {sorted(other)}")
        for name in sorted(set(cm) & set(other)):
            if cm[name][0] != other[name][0]:
                problems.append(f"{name}: component deps cmake {sorted(cm[name][0])} vs {label} {sorted(other[name][0])}")
            if cm[name][1] != other[name][1]:
                problems.append(f"{name}: third-party deps cmake {sorted(cm[name][1])} vs {label} {sorted(other[name][1])}")

    top = open(os.path.join(root, "CMakeLists.txt")).read()
    version = project_version(root)
    if version is None:
        problems.append("CMakeLists.txt: no project(cninet VERSION x.y.z)")
    problems += check_conan_recipe(root, raw_cmake, version)

    # Optional etcd part: Conan option with_etcd, vcpkg feature etcd, CMake option CNINET_WITH_ETCD.
    if "with_etcd" not in conan_options:
        problems.append("conan: OPTIONAL_PARTS lacks with_etcd")
    if "etcd" not in vc_optional:
        problems.append("vcpkg: feature etcd missing")
    if "option(CNINET_WITH_ETCD " not in top:
        problems.append("CMake: no option CNINET_WITH_ETCD")
    # Feature -> CMake option mapping of the port must name existing options and features.
    portfile = open(os.path.join(root, "ports", "cninet", "portfile.cmake")).read()
    mapped = set()
    for feat, opt in re.findall(r"^\s+([\w-]+)\s+(CNINET_WITH_\w+)\s*$", portfile, re.M):
        mapped.add(feat)
        if f"option({opt} " not in top:
            problems.append(f"vcpkg portfile maps feature {feat} to unknown CMake option {opt}")
        if feat not in manifest.get("features", {}):
            problems.append(f"vcpkg portfile maps unknown feature {feat}")
    for feat in manifest.get("features", {}):
        if feat not in mapped:
            problems.append(f"vcpkg feature {feat} switches no CMake option in portfile.cmake")
    usage = open(os.path.join(root, "ports", "cninet", "usage")).read()
    for c in cm:
        if c not in CORE and f"option(CNINET_WITH_{c.upper()} " not in top:
            problems.append(f"CMake: no option CNINET_WITH_{c.upper()} for component {c}")
        if c not in usage:
            problems.append(f"ports/cninet/usage does not mention component {c}")

    if manifest.get("version") != version:
        problems.append(f"version: CMakeLists.txt {version} vs vcpkg.json {manifest.get('version')}")

    if build:
        built = build_components(build)
        if not built:
            problems.append(f"{build}: cninetConfig.cmake lists no components")
        complete = set(built) == set(raw_cmake)
        for name, (deps, third) in built.items():
            if name not in raw_cmake:
                problems.append(f"build {build}: component {name} is not declared in src/")
                continue
            want_deps, want_third = raw_cmake[name]
            # A build without some components may drop optional parts; a complete one may not.
            if (deps != want_deps) if complete else not deps <= want_deps:
                problems.append(f"build: {name} depends on {sorted(deps)}, the sources declare {sorted(want_deps)}")
            if not third <= closure(raw_cmake)[name][1]:
                problems.append(f"build: {name} finds {sorted(third)}, beyond the declared {sorted(want_third)}")
    return problems


def self_test(root):
    """Renames a component (or changes a dependency, target or version) in exactly one place at a
    time; each change must be caught."""
    mutations = [
        ("conan/conanfile.py", '"datapath": (["cni"]', '"dataplane": (["cni"]'),
        ("ports/cninet/vcpkg.json", '"datapath": {', '"dataplane": {'),
        ("src/ipam/CMakeLists.txt", "NAME ipam", "NAME ipalloc"),
        ("ports/cninet/portfile.cmake", "    netlink  CNINET_WITH_NETLINK", "    nl  CNINET_WITH_NETLINK"),
        ("conan/conanfile.py", 'set_property("cmake_target_name", "cninet::" + name)',
         'set_property("cmake_target_name", "cninet_" + name)'),
        ("conan/conanfile.py", '"netlink": (["cni"], ["libnl::libnl"])', '"netlink": (["cni"], [])'),
        ("ports/cninet/vcpkg.json", '"libbpf"', '"elfutils"'),
        ("ports/cninet/vcpkg.json", '"version": "', '"version": "9'),
        ("ports/cninet/vcpkg.json", '"license":', '"licence":'),
    ]
    failures = 0
    for rel, old, new in mutations:
        with tempfile.TemporaryDirectory() as tmp:
            for sub in ("conan", "ports", "src"):
                shutil.copytree(os.path.join(root, sub), os.path.join(tmp, sub))
            shutil.copy(os.path.join(root, "CMakeLists.txt"), tmp)
            path = os.path.join(tmp, rel)
            text = open(path).read()
            if old not in text:
                print(f"self-test: cannot apply mutation to {rel}: {old!r} not found")
                failures += 1
                continue
            open(path, "w").write(text.replace(old, new, 1))
            problems = check(tmp)
            status = f"caught ({problems[0]})" if problems else "MISSED"
            print(f"self-test: {rel}: {old!r} -> {new!r}: {status}")
            failures += 0 if problems else 1
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--build", help="a configured build tree to check against the sources")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    if a.self_test:
        base = check(root)
        if base:
            print("self-test needs a consistent tree first:\n  " + "\n  ".join(base))
            return 1
        failures = self_test(root)
        print("self-test: " + ("FAILED" if failures else "every mutation was caught"))
        return 1 if failures else 0
    problems = check(root, a.build)
    if problems:
        print("packaging is inconsistent:\n  " + "\n  ".join(problems))
        return 1
    comps = cmake_components(root)
    print(f"packaging consistent (CMake, Conan, vcpkg{', build ' + a.build if a.build else ''}), "
          f"version {project_version(root)}:")
    for name in COMPONENT_ORDER:
        if name in comps:
            deps, third = comps[name]
            print(f"  {name}: components {sorted(deps)}, third-party {sorted(third)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
