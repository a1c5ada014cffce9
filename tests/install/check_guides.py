#!/usr/bin/env python3
"""The guides in docs/ quote compiled code: every ```cpp block of a guide is, in order, a
`// [doc:NAME]` ... `// [/doc]` block of the example file the build compiles.

Usage: check_guides.py SOURCE_DIR          exit 1 naming the first difference
       check_guides.py SOURCE_DIR --fix    rewrite the guides' cpp blocks from the examples
"""
import difflib
import re
import sys

GUIDES = [
    ("docs/writing-a-plugin.md", "examples/guide-plugin/main.cc"),
    ("docs/chained-plugin.md", "examples/guide-chain/main.cc"),
    ("docs/embedding-the-datapath.md", "examples/guide-datapath/main.cc"),
]
GUIDE_BLOCK = re.compile(r"```cpp\n(.*?)```", re.S)
BEGIN = re.compile(r"^\s*// \[doc:([a-z-]+)\]$")
END = re.compile(r"^\s*// \[/doc\]$")


def snippets(code):
    """[(name, text)] of the [doc:] blocks, text ending with a newline."""
    out, cur, lines = [], None, []
    for line in code.split("\n"):
        if BEGIN.match(line):
            if cur:
                raise ValueError(f"[doc:{cur}] is not closed before [doc:{BEGIN.match(line).group(1)}]")
            cur, lines = BEGIN.match(line).group(1), []
        elif END.match(line):
            if not cur:
                raise ValueError("[/doc] without [doc:...]")
            out.append((cur, "\n".join(lines) + "\n"))
            cur = None
        elif cur:
            lines.append(line)
    if cur:
        raise ValueError(f"[doc:{cur}] is not closed")
    return out


def main():
    root = sys.argv[1]
    fix = "--fix" in sys.argv[2:]
    failures = 0
    for guide_path, code_path in GUIDES:
        guide = open(f"{root}/{guide_path}").read()
        code = open(f"{root}/{code_path}").read()
        snips = snippets(code)
        blocks = GUIDE_BLOCK.findall(guide)
        if len(snips) < 3:
            print(f"{code_path}: only {len(snips)} [doc:] blocks")
            failures += 1
            continue
        if fix and len(blocks) == len(snips):
            it = iter(snips)
            guide = GUIDE_BLOCK.sub(lambda m: "```cpp\n" + next(it)[1] + "```", guide)
            open(f"{root}/{guide_path}", "w").write(guide)
            blocks = GUIDE_BLOCK.findall(guide)
        if len(blocks) != len(snips):
            print(f"{guide_path}: {len(blocks)} cpp blocks, {code_path}: {len(snips)} [doc:] blocks")
            failures += 1
            continue
        for i, ((name, snip), block) in enumerate(zip(snips, blocks)):
            if snip != block:
                diff = "".join(difflib.unified_diff(block.splitlines(True), snip.splitlines(True),
                                                    f"{guide_path} block {i + 1}",
                                                    f"{code_path} [doc:{name}]"))
                print(diff)
                failures += 1
        print(f"{guide_path}: {len(blocks)} code blocks = {code_path}"
              f"{'' if failures == 0 else ' (differences above)'}")
    if failures:
        print("guides and examples disagree; `check_guides.py SOURCE_DIR --fix` copies the "
              "examples' [doc:] blocks into the guides")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
