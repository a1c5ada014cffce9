#!/usr/bin/env python3
"""Turns the plain `//` comments of public headers into Doxygen comments, idempotently.

- The comment block before the include guard becomes the file's `/// @file` documentation.
- A `//` comment block directly above a declaration (or a #define) becomes `///`. Section
  markers such as `// ---- Links ----` stay plain comments and are not merged into the next
  declaration's documentation.
- A trailing `// text` after a declaration (member, enumerator) becomes `///< text`.
- In the comments it converts, `<placeholder>` words (which Doxygen would take for unknown HTML
  tags) are put in backquotes: `(<dir>/x)` becomes ``(`<dir>/x`)``.
Leaves `// namespace ...`, `#endif  // ...`, NOLINT and IWYU comments alone.
Usage: doc-comments.py [--check] FILE...
  rewrites the files in place and prints the ones it changed; with --check changes nothing and
  exits 1 when a file would change.
"""
import re
import sys

SKIP = re.compile(r"//\s*(namespace\b|NOLINT|IWYU|clang-format|namespace$)")
SECTION = re.compile(r"^\s*//\s*(-{3,}|={3,}|\*{3,})")
COMMENT = re.compile(r"^(\s*)//(?!/)(\s?)(.*)$")
# A whitespace-delimited word holding a <placeholder> and no backquote yet.
PLACEHOLDER = re.compile(r"(?<![`\w])([^\s`(]*<[A-Za-z_][\w.-]*>[^\s`,;:)]*)")


def quote_placeholders(text):
    if "`" in text:
        return text  # Already uses code spans: leave it to the author.

    def wrap(m):
        word = m.group(1)
        tail = re.search(r"[.]*$", word).group(0)  # A sentence's full stop stays outside.
        return f"`{word[:len(word) - len(tail)]}`{tail}"

    return PLACEHOLDER.sub(wrap, text)


def documentable(line):
    """True when `line` starts a declaration a comment above it documents."""
    s = line.strip()
    if not s or s.startswith("}"):
        return False
    if s.startswith("#"):
        return s.startswith("#define")
    return True


def convert(text):
    lines = text.split("\n")
    out = []
    in_file_header = True
    i = 0
    while i < len(lines):
        line = lines[i]
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
                out.append(("/// " + quote_placeholders(body)).rstrip())
                i += 1
                continue
            out.append(line)
            i += 1
            continue
        # A block of whole-line comments: document the declaration below it, if any.
        if COMMENT.match(line) and not SKIP.search(line):
            j = i
            while j < len(lines) and COMMENT.match(lines[j]) and not SKIP.search(lines[j]):
                j += 1
            block = lines[i:j]
            nxt = lines[j] if j < len(lines) else ""
            if documentable(nxt) and not nxt.strip().startswith("//"):
                # Only the lines after the last section marker describe the declaration.
                start = 0
                for k, l in enumerate(block):
                    if SECTION.match(l):
                        start = k + 1
                out.extend(block[:start])
                for l in block[start:]:
                    m = COMMENT.match(l)
                    out.append(f"{m.group(1)}///{m.group(2)}{quote_placeholders(m.group(3))}".rstrip())
            else:
                out.extend(block)
            i = j
            continue
        # Trailing comment after code.
        m = re.match(r"^(\s*[^/\s#].*?[;,{])(\s+)//(?!/)(?![<!])\s?(.*)$", line)
        if m and not SKIP.search(line) and '"' not in m.group(1)[-1:]:
            out.append(f"{m.group(1)}{m.group(2)}///< {quote_placeholders(m.group(3))}".rstrip())
            i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def main():
    args = sys.argv[1:]
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    changed = []
    for path in paths:
        with open(path) as f:
            text = f.read()
        new = convert(text)
        if new != text:
            changed.append(path)
            if not check:
                with open(path, "w") as f:
                    f.write(new)
            print(path)
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
