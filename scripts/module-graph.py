#!/usr/bin/env python3
"""The module graph of the library, from the paths its sources name.

Reads src/**/*.rs, takes every `crate::…` path (in `use` trees and in code), resolves
`self::`, `super::` and the names a module re-exports with `pub use` to the module that
defines them, and prints the strongly connected components of more than one module: the
import cycles. A reference between a module and one of its ancestors does not count (a
parent declares and re-exports its children). Comments and string literals are skipped, so
doc links do not count either; tests inside a file count as that file.

    python3 scripts/module-graph.py            # the cycles; exit 1 if there is any
    python3 scripts/module-graph.py --edges    # also every edge, `from -> to`

Exit status: 0 with no cycle, 1 with one or more.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src"
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_of(path: Path) -> tuple:
    """`src/a/b.rs` is `("a", "b")`; `src/a/mod.rs` is `("a",)`; `src/lib.rs` is `()`."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


def strip(text: str) -> str:
    """The source with comments, string and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 40]) and not re.match(r"[A-Za-z0-9_]", text[i - 1:i] or " "):
            m = re.match(r'r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append("\n" * text.count("\n", i, end) + '""')
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append("\n" * text.count("\n", i, j) + '""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'|'\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\})'", text[i:i + 12]):
            m = re.match(r"'(\\.|[^\\'])'|'\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\})'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def use_paths(tree: str) -> list:
    """The paths a `use` tree names: `a::{b, c::{d, e as f}}` is a::b, a::c::d, a::c::e@f."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+", "@", tree))  # `a as b` is `a@b`

    def expand(prefix: str, s: str) -> list:
        if "{" not in s:
            return [prefix + s]
        head, _, rest = s.partition("{")
        body = rest[: rest.rfind("}")]
        items, depth, cur = [], 0, ""
        for ch in body:
            if ch == "," and depth == 0:
                items.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        items.append(cur)
        return [p for item in items if item for p in expand(prefix + head, item)]

    return expand("", tree)


def scan(path: Path, modules: set):
    """(inline-module path, referenced path) for each path in the file, and its re-exports."""
    text = strip(path.read_text())
    base = module_of(path)
    stack = []  # (inline module name, brace depth inside it)
    depth = 0
    refs, reexports = [], []
    token = re.compile(
        r"(?P<mod>\bmod\s+(?P<mname>" + IDENT + r")\s*\{)"
        r"|(?P<use>\b(?P<vis>pub(\s*\([^)]*\))?\s+)?use\s+(?P<tree>[^;]+);)"
        r"|(?P<path>(?<![A-Za-z0-9_:$])(?:crate|self|super)(?:::" + IDENT + r")+)"
        r"|(?P<open>\{)|(?P<close>\})"
    )
    for m in token.finditer(text):
        here = base + tuple(name for name, _ in stack)
        if m.group("mod"):
            depth += 1
            stack.append((m.group("mname"), depth))
        elif m.group("open"):
            depth += 1
        elif m.group("close"):
            if stack and stack[-1][1] == depth:
                stack.pop()
            depth -= 1
        elif m.group("use"):
            for p in use_paths(m.group("tree")):
                segs = [s for s in p.split("@")[0].split("::") if s]
                if not segs or segs[-1] == "*":
                    segs = segs[:-1]
                if not segs:
                    continue
                if segs[0] not in ("crate", "self", "super") and here + (segs[0],) in modules:
                    segs = ["self"] + segs  # a child module named without `self::`
                if segs[0] in ("crate", "self", "super"):
                    refs.append((here, segs))
                    if m.group("vis"):
                        alias = p.split("@")[1] if "@" in p else segs[-1]
                        if alias != "_":
                            reexports.append((here, segs, alias))
        elif m.group("path"):
            refs.append((here, m.group("path").split("::")))
    return refs, reexports


def absolute(here: tuple, segs: list) -> tuple:
    """A `crate::`/`self::`/`super::` path as a path from the crate root."""
    at = list(here)
    if segs[0] == "crate":
        at, segs = [], segs[1:]
    else:
        while segs and segs[0] in ("self", "super"):
            if segs[0] == "super":
                at.pop()
            segs = segs[1:]
    return tuple(at) + tuple(segs)


def main() -> int:
    files = sorted(ROOT.rglob("*.rs"))
    modules = {module_of(f) for f in files}
    scans = {module_of(f): scan(f, modules) for f in files}

    # name re-exported by a module -> the absolute path it stands for
    exports = {}
    for refs, reexports in scans.values():
        for here, segs, name in reexports:
            exports[(tuple(here), name)] = absolute(here, segs)

    def owner(path: tuple, seen=()) -> tuple:
        """The file module that defines what `path` names."""
        best = ()
        for i in range(len(path), 0, -1):
            if path[:i] in modules:
                best = path[:i]
                break
        # `best::Name` where `Name` is re-exported by `best` (possibly through inline mods)
        rest = path[len(best):]
        for k in range(len(best), -1, -1):
            key = (path[:k], path[k] if k < len(path) else None)
            if key in exports and key not in seen and k >= len(best):
                return owner(exports[key] + path[k + 1:], seen + (key,))
        return best

    edges = set()
    for mod, (refs, _) in scans.items():
        for here, segs in refs:
            target = owner(absolute(here, segs))
            if target == mod or mod[: len(target)] == target or target[: len(mod)] == mod:
                continue  # the module itself, an ancestor or a descendant
            edges.add((mod, target))

    name = lambda m: "::".join(m) or "crate"
    graph = {m: sorted(t for f, t in edges if f == m) for m in modules}

    # Tarjan's strongly connected components.
    index, low, onstack, stack, sccs, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        onstack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in onstack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                onstack.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)

    if "--edges" in sys.argv:
        for f, t in sorted(edges):
            print(f"{name(f)} -> {name(t)}")
        print()
    cycles = sorted(sorted(map(name, c)) for c in sccs if len(c) > 1)
    print(f"{len(modules)} modules, {len(edges)} edges, {len(cycles)} cycle(s)")
    for comp in cycles:
        members = set(comp)
        print("cycle: " + " · ".join(comp))
        for f, t in sorted(edges):
            if name(f) in members and name(t) in members:
                print(f"    {name(f)} -> {name(t)}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
