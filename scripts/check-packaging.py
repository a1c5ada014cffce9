#!/usr/bin/env python3
"""Checks that the CMake build, the Conan recipe and the vcpkg port agree.

What must agree: the set of components, each component's dependencies on other components, each
component's third-party dependencies (normalized names), the optional etcd part, the version, and
the CMake options the vcpkg features switch. Usage:

  check-packaging.py [--root DIR]     exit 0 when consistent, 1 with a list of mismatches
  check-packaging.py --self-test      proves the check fails when one place is changed alone
"""
import argparse
import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

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


def normalize(dep):
    for rx, name in NORMALIZE:
        if rx.search(dep):
            return name
    return None


def cmake_components(root):
    """{name: (component_deps, third_party)} from cninet_add_component() calls."""
    out = {}
    for path in sorted(glob.glob(os.path.join(root, "src", "*", "CMakeLists.txt"))):
        text = open(path).read()
        for m in re.finditer(r"cninet_add_component\((.*?)\)\s*$", text, re.S | re.M):
            body = re.sub(r"#[^\n]*", "", m.group(1))
            tokens = re.findall(r'"[^"]*"|\S+', body)
            sections, cur = {}, None
            for t in tokens:
                if re.fullmatch(r"[A-Z_]+", t):
                    cur = t
                    sections.setdefault(cur, [])
                elif cur:
                    sections[cur].append(t.strip('"'))
            name = sections.get("NAME", [None])[0]
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


def conan_components(root):
    tree = ast.parse(open(os.path.join(root, "conan", "conanfile.py")).read())
    comps, optional = None, []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "COMPONENTS":
                comps = ast.literal_eval(node.value)
            if node.targets[0].id == "OPTIONAL_PARTS":
                optional = ast.literal_eval(node.value)
    out = {}
    for name, (deps, reqs) in comps.items():
        third = {normalize(r) for r in reqs} - {None}
        for comp, option, part_reqs in optional:
            if comp == name:
                third |= {normalize(r) for r in part_reqs} - {None}
        out[name] = (set(deps), third)
    options = {opt for _, opt, _ in optional}
    return out, options


def vcpkg_components(root):
    manifest = json.load(open(os.path.join(root, "ports", "cninet", "vcpkg.json")))

    def names(deps):
        res = []
        for d in deps:
            res.append(d if isinstance(d, str) else d["name"])
        return res

    base_third = {normalize(d) for d in names(manifest.get("dependencies", []))} - {None}
    out = {"cni": (set(), base_third)}
    optional_features = set()
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
    for dep, (comp, feat) in OPTIONAL.items():
        if feat in out:
            fdeps, fthird = out.pop(feat)
            optional_features.add(feat)
            if comp in out:
                out[comp] = (out[comp][0], out[comp][1] | fthird)
            if comp not in fdeps:
                out.setdefault("_errors", (set(), set()))[0].add(f"vcpkg feature {feat} must depend on {comp}")
    # vcpkg features list cninet features they need; cni is implicit.
    for name, (deps, third) in list(out.items()):
        if name != "cni" and not name.startswith("_"):
            out[name] = ({*deps, "cni"} if deps or name in ("ipam", "netlink", "datapath", "agent") else deps, third)
    return out, manifest, optional_features


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


def check(root):
    problems = []
    cm = cmake_components(root)
    cn, conan_options = conan_components(root)
    vc, manifest, vc_optional = vcpkg_components(root)
    errs = vc.pop("_errors", (set(), set()))[0]
    problems += sorted(errs)
    cm, cn, vc = closure(cm), closure(cn), closure(vc)

    for label, other in (("conan", cn), ("vcpkg", vc)):
        if set(cm) != set(other):
            problems.append(f"components differ: cmake {sorted(cm)} vs {label} {sorted(other)}")
        for name in sorted(set(cm) & set(other)):
            if cm[name][0] != other[name][0]:
                problems.append(f"{name}: component deps cmake {sorted(cm[name][0])} vs {label} {sorted(other[name][0])}")
            if cm[name][1] != other[name][1]:
                problems.append(f"{name}: third-party deps cmake {sorted(cm[name][1])} vs {label} {sorted(other[name][1])}")

    # Optional etcd part: Conan option with_etcd, vcpkg feature etcd, CMake option CNINET_WITH_ETCD.
    top = open(os.path.join(root, "CMakeLists.txt")).read()
    if "with_etcd" not in conan_options:
        problems.append("conan: OPTIONAL_PARTS lacks with_etcd")
    if "etcd" not in vc_optional:
        problems.append("vcpkg: feature etcd missing")
    # Feature -> CMake option mapping of the port must name existing options.
    portfile = open(os.path.join(root, "ports", "cninet", "portfile.cmake")).read()
    for feat, opt in re.findall(r"^\s+(\w+)\s+(CNINET_WITH_\w+)\s*$", portfile, re.M):
        if f"option({opt} " not in top:
            problems.append(f"vcpkg portfile maps feature {feat} to unknown CMake option {opt}")
        if feat not in manifest.get("features", {}):
            problems.append(f"vcpkg portfile maps unknown feature {feat}")
    for c in cm:
        if c != "cni" and f"option(CNINET_WITH_{c.upper()} " not in top:
            problems.append(f"CMake: no option CNINET_WITH_{c.upper()} for component {c}")

    version = re.search(r"project\(cninet\s+VERSION\s+([0-9.]+)", top).group(1)
    if manifest.get("version") != version:
        problems.append(f"version: CMakeLists.txt {version} vs vcpkg.json {manifest.get('version')}")
    return problems


def self_test(root):
    """Renames a component in exactly one place at a time; each must be caught."""
    mutations = [
        ("conan/conanfile.py", '"datapath": (["cni"]', '"dataplane": (["cni"]'),
        ("ports/cninet/vcpkg.json", '"datapath": {', '"dataplane": {'),
        ("src/ipam/CMakeLists.txt", "NAME ipam", "NAME ipalloc"),
        ("ports/cninet/vcpkg.json", '"version": "', '"version": "9'),
        ("conan/conanfile.py", '"netlink": (["cni"], ["libnl::libnl"])', '"netlink": (["cni"], [])'),
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
            status = "caught" if problems else "MISSED"
            print(f"self-test: {rel}: {old!r} -> {new!r}: {status}")
            failures += 0 if problems else 1
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    if a.self_test:
        base = check(root)
        if base:
            print("self-test needs a consistent tree first:\n  " + "\n  ".join(base))
            return 1
        return 1 if self_test(root) else 0
    problems = check(root)
    if problems:
        print("packaging is inconsistent:\n  " + "\n  ".join(problems))
        return 1
    print(f"packaging consistent: components {sorted(cmake_components(root))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
