"""The package's layout, read from its imports with `ast`: subpackages are layers whose imports only point down,
no import circle between files or subpackages, no file over MAX_LINES, no deeper nesting than MAX_DEPTH, torch
kept out of the analysis layer, and a function-local package import only where its line says why."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# Bottom to top: a module may import from its own layer and the layers before it, never from one after it.
LAYERS = ("nets", "measure", "theory", "analysis", "runs", "book")
MAX_LINES = 450
MAX_DEPTH = 4            # bnopt.book.chapters.smoothness.sweeps: four names below nothing
FRONTS = ("bnopt", "bnopt.__main__", "bnopt._version")   # the public API, the command, the version: outside the layers
LOCAL_WHY = "# local:"   # a function-local package import says why on its line


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted((SRC / "bnopt").rglob("*.py")):
        parts = p.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports(name: str, path: Path, known: dict) -> list[tuple[str, int, bool]]:
    """(imported bnopt module, line, at module level) of every import in one file."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        # an `if TYPE_CHECKING:` import is still an edge: the rules hold for annotations too
        out += [(t, node.lineno, id(node) in top) for t in targets if t.split(".")[0] == "bnopt"]
    return out


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def unit(name: str) -> str:
    """The subpackage a module belongs to (bnopt.book.chapters.smoothness.sweeps -> bnopt.book.chapters.smoothness)."""
    known = modules()
    path = known[name]
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return known, {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def test_cycles_finds_a_circle_and_none_in_a_chain():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_every_module_is_in_a_layer(graph):
    known, _ = graph
    loose = [n for n in known if layer(n) is None and n not in FRONTS]
    assert not loose, f"modules outside the layers {LAYERS}: {loose}"


def test_imports_point_down(graph):
    """Also: the run store (bnopt.runs) imports nothing of the book's chapters or grids."""
    known, edges = graph
    up = [f"{src} imports {dst} (line {line})" for src, es in edges.items() for dst, line, _ in es
          if layer(src) is not None and layer(dst) is not None and layer(dst) > layer(src)]
    inward = [f"{src} imports the package's front {dst} (line {line})" for src, es in edges.items()
              for dst, line, _ in es if src not in FRONTS and dst == "bnopt"]
    assert not up + inward, "imports that point up:\n" + "\n".join(up + inward)


def test_no_circle_between_files(graph):
    known, edges = graph
    found = cycles({s: {d for d, _, _ in es if d in known and d != s} for s, es in edges.items()})
    assert not found, f"import circles between files: {found}"


def test_no_circle_between_subpackages(graph):
    known, edges = graph
    units = {}
    for s, es in edges.items():
        for d, _, _ in es:
            if d in known and unit(s) != unit(d):
                units.setdefault(unit(s), set()).add(unit(d))
    # a package's __init__ may gather its own subpackages (the front `bnopt` gathers the public API)
    units = {s: {d for d in ds if not d.startswith(s + ".")} for s, ds in units.items()}
    found = cycles(units)
    assert not found, f"import circles between subpackages: {found}"


def test_no_file_too_long_or_too_deep(graph):
    known, _ = graph
    long = {n: len(p.read_text().splitlines()) for n, p in known.items()}
    assert not {n: k for n, k in long.items() if k > MAX_LINES}, \
        f"files over {MAX_LINES} lines: {sorted((k, n) for n, k in long.items() if k > MAX_LINES)}"
    deep = [n for n in known if len(n.split(".")) - 1 > MAX_DEPTH]
    assert not deep, f"modules nested deeper than {MAX_DEPTH}: {deep}"


def test_analysis_needs_no_torch():
    for p in (SRC / "bnopt" / "analysis").rglob("*.py"):
        mods = {a.name.split(".")[0] for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Import)
                for a in n.names} | {(n.module or "").split(".")[0] for n in ast.walk(ast.parse(p.read_text()))
                                     if isinstance(n, ast.ImportFrom)}
        assert "torch" not in mods, f"{p.name} imports torch: the analysis layer works on numbers"


def test_function_local_package_imports_say_why(graph):
    known, edges = graph
    silent = []
    for s, es in edges.items():
        lines = known[s].read_text().splitlines()
        silent += [f"{s}:{line}: {lines[line - 1].strip()}" for _, line, at_top in es
                   if not at_top and LOCAL_WHY not in lines[line - 1]]
    assert not silent, f"function-local package imports without a `{LOCAL_WHY} <why>` comment:\n" + "\n".join(silent)


def test_the_library_page_measures_through_the_public_api_only():
    """The page "Measuring your own model" reaches the measurements the way a reader would: names of
    `bnopt.measure.__all__` (which `bnopt` re-exports), never its modules or private helpers."""
    import bnopt
    import bnopt.measure

    path = SRC / "bnopt" / "book" / "chapters" / "library.py"
    used = [(n.module, a.name) for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)
            and (n.module or "").startswith("bnopt.measure") for a in n.names]
    assert used, "the library page imports no measurement"
    assert all(m == "bnopt.measure" and name in bnopt.measure.__all__ for m, name in used), used
    assert set(bnopt.measure.__all__) - {"DIRECTIONS", "model_state_equal"} <= set(bnopt.__all__)
