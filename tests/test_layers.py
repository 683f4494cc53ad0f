"""The architecture as the imports have it: data flows one way. Every import between project modules, at
the top of a file or inside a function, goes to a lower layer or within one layer without a cycle. The
layers, low to high (docs/architecture.md):

    0  games, native                  the rules and the numba kernels
    1  specmcts (config, atomic, stopping, threads, sgf)    what every layer uses
    2  specmcts.engine                network, evaluator, NN cache, search, speculation, move rules
    3  specmcts.play                  matches, Elo, the GTP engine, the analysis engine, GTP client
    4  specmcts.training              self-play, replay, trainer, backends, the run loop
    5  specmcts.cli, specmcts.__main__, specmcts.bench     the command line and the benchmarks
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("games", "native", "specmcts")
LAYERS = {
    0: ("games", "native"),
    1: ("specmcts",),  # the package's own modules: its utilities
    2: ("specmcts.engine",),
    3: ("specmcts.play",),
    4: ("specmcts.training",),
    5: ("specmcts.cli", "specmcts.__main__", "specmcts.bench"),
}


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def layer(module: str) -> int:
    """The layer of the longest prefix that names ``module`` or a package above it."""
    best, found = -1, None
    for rank, names in LAYERS.items():
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), rank
    assert found is not None, f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)"
    return found


def imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """Project module -> the project modules it imports anywhere in its file (functions included)."""

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(resolve(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.update(resolve(f"{node.module}.{a.name}") or resolve(node.module) for a in node.names)
        graph[module] = {m for m in found if m and m != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_project_modules():
    graph = imports(modules())
    found = cycles(graph)
    assert not found, "import cycles (function-level imports count): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_imports_only_go_down_the_layers():
    graph = imports(modules())
    upward = sorted(f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
                    for a, deps in graph.items() for b in deps if layer(b) > layer(a))
    assert not upward, "\n".join(upward)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """On made-up files: an engine module importing the training layer inside a function, and a cycle through
    that import, are both found."""
    search, loop = tmp_path / "search.py", tmp_path / "loop.py"
    search.write_text("import numpy\n\n\ndef f():\n    from specmcts.training.loop import RunLoop\n")
    loop.write_text("from specmcts.engine.search import Search\n")
    graph = imports({"specmcts.engine.search": search, "specmcts.training.loop": loop})
    assert graph == {"specmcts.engine.search": {"specmcts.training.loop"},
                     "specmcts.training.loop": {"specmcts.engine.search"}}
    assert cycles(graph) == [["specmcts.engine.search", "specmcts.training.loop"]]
    assert layer("specmcts.training.loop") > layer("specmcts.engine.search")
    assert layer("specmcts.play.gtp.engine") == 3 and layer("specmcts.config") == 1


def test_only_the_engine_touches_the_search_trees():
    """Front-ends (play, training, the CLI) ask ``Search`` (``pv``, ``pv_visits``, ``root_expanded``,
    ``restrict_root``, ...): no module outside ``specmcts.engine`` imports the tree kernels or reads a field of
    ``search.trees``."""
    offenders = []
    for module, path in modules().items():
        if not module.startswith(("specmcts.play", "specmcts.training", "specmcts.cli")):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "native" and any(a.name == "tree" for a in node.names):
                offenders.append(f"{module}: imports native.tree")
            if isinstance(node, ast.Import) and any(a.name == "native.tree" for a in node.names):
                offenders.append(f"{module}: imports native.tree")
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "trees"):
                offenders.append(f"{module}:{node.lineno}: reads .trees.{node.attr}")
    assert not offenders, "\n".join(offenders)
