#!/usr/bin/env python3
"""Turns the plain `//` comments of public headers into Doxygen comments, idempotently.

- The comment block before the include guard becomes the file's `/// @file` documentation.
- A `//` comment block directly above a declaration becomes `///`.
- A trailing `// text` after a declaration (member, enumerator) becomes `///< text`.
Leaves `// namespace ...`, `#endif  // ...`, NOLINT and IWYU comments alone.
Usage: doc-comments.py FILE...   (rewrites in place; prints the files it changed)
"""
import re
import sys

SKIP = re.compile(r"//\s*(namespace\b|NOLINT|IWYU|clang-format|namespace$)")


def convert(text):
    lines = text.split("\n")
    out = []
    in_file_header = True
    for i, line in enumerate(lines):
        stripped = line.strip()
        if in_file_header:
            if stripped.startswith("#ifndef") or stripped.startswith("#pragma once"):
                in_file_header = False
            elif stripped.startswith("//") and not stripped.startswith("///"):
                body = stripped[2:]
                if body.startswith(" "):
                    body = body[1:]
                if not any(l.startswith("/// @file") for l in out):
                    out.append("/// @file")
                out.append(("/// " + body).rstrip())
                continue
            out.append(line)
            continue
        # Whole-line comment above a declaration.
        m = re.match(r"^(\s*)//(?!/)(\s?)(.*)$", line)
        if m and not SKIP.search(line):
            # Only when the block is followed by code (not a blank line or a preprocessor line).
            j = i + 1
            while j < len(lines) and re.match(r"^\s*//", lines[j]):
                j += 1
            nxt = lines[j].strip() if j < len(lines) else ""
            if nxt and not nxt.startswith("#") and not nxt.startswith("}"):
                out.append(f"{m.group(1)}///{m.group(2)}{m.group(3)}".rstrip())
                continue
        # Trailing comment after code.
        m = re.match(r"^(\s*[^/\s#].*?[;,{])(\s+)//(?!/)(?![<!])\s?(.*)$", line)
        if m and not SKIP.search(line) and '"' not in m.group(1)[-1:]:
            out.append(f"{m.group(1)}{m.group(2)}///< {m.group(3)}".rstrip())
            continue
        out.append(line)
    return "\n".join(out)


def main():
    for path in sys.argv[1:]:
        text = open(path).read()
        new = convert(text)
        if new != text:
            open(path, "w").write(new)
            print(path)


if __name__ == "__main__":
    main()
