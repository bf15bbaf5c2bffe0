#!/usr/bin/env python3
"""Structure checks that no compiler makes: run from the repository root (CI runs it).

    python3 scripts/check-structure.py

1. No source file under crates/*/src is over 700 lines, not counting its `#[cfg(test)]`
   module (the first line starting with `#[cfg(test)]` ends what is counted).
2. No module cycle among the sibling modules of ferry-server's `api/` and ferry-core's
   `engine/` and `adaptive/`: module `a` names sibling `b` (`super::b`, `crate::api::b`, or
   inside `super::{...}`, doc links included) while `b`, directly or through others, names
   `a`.

Prints the five largest files and every cycle; exits 1 on a violation.
"""
import os
import re
import sys

LIMIT = 700
CYCLE_DIRS = [
    ("crates/ferry-server/src/api", "crate::api"),
    ("crates/ferry-core/src/engine", "crate::engine"),
    ("crates/ferry-core/src/adaptive", "crate::adaptive"),
]


def counted_lines(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("#[cfg(test)]"):
            return i
    return len(lines)


def sizes():
    out = []
    for root, _, files in os.walk("crates"):
        parts = root.split(os.sep)
        if "src" not in parts or "target" in parts:
            continue
        for name in files:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                out.append((counted_lines(path), path))
    return sorted(out, reverse=True)


def cycles(directory, prefix):
    modules = {}
    for root, _, files in os.walk(directory):
        for name in files:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, directory)[:-3]
                top = rel.replace(os.sep + "mod", "").split(os.sep)[0]
                if top != "mod":
                    modules.setdefault(top, []).append(path)
    graph = {m: set() for m in modules}
    for module, paths in modules.items():
        for path in paths:
            with open(path, encoding="utf-8") as f:
                source = f.read().split("#[cfg(test)]")[0]
            for other in modules:
                if other == module:
                    continue
                direct = re.search(r"(super|%s)::%s\b" % (re.escape(prefix), other), source)
                grouped = re.search(r"super::\{[^}]*\b%s\b" % other, source)
                if direct or grouped:
                    graph[module].add(other)
    found = set()

    def walk(node, stack):
        for nxt in graph[node]:
            if nxt in stack:
                cycle = stack[stack.index(nxt):]
                start = cycle.index(min(cycle))
                found.add(tuple(cycle[start:] + cycle[:start]))
            elif len(stack) < 10:
                walk(nxt, stack + [nxt])

    for module in graph:
        walk(module, [module])
    return sorted(found)


def main():
    bad = False
    ranked = sizes()
    print("largest source files (lines before #[cfg(test)]):")
    for n, path in ranked[:5]:
        print(f"  {n:5} {path}")
    for n, path in ranked:
        if n > LIMIT:
            print(f"over {LIMIT} lines: {path} ({n})")
            bad = True
    for directory, prefix in CYCLE_DIRS:
        found = cycles(directory, prefix)
        print(f"module cycles in {directory}: {', '.join(' -> '.join(c) for c in found) or 'none'}")
        bad |= bool(found)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
