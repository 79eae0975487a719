"""The package's shape, as rules a change cannot break silently (issue 16): imports follow
the data flow with no cycle, only search/ and cluster/ import Ray, nothing below the CLI
imports it at module level, no import at any level (function-level ones included) closes
a cycle, and no module grows past a size that says it holds several stories. Read from the
source with `ast`, so nothing is imported or run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "takd_search"
# modules allowed over MAX_LINES because they hold one story each (said in their docstring)
ONE_STORY = {"takd_search.report.plots"}
MAX_LINES = 460


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = p
    return out


def _imports(path: Path, module: str, top_level_only: bool) -> set[str]:
    """Project modules `module` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: resolve against this package
                pkg = (
                    module.split(".")[: -node.level]
                    if path.name != "__init__.py"
                    else (module.split(".")[: len(module.split(".")) - node.level + 1])
                )
                base = ".".join([*pkg, node.module])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for m, p in mods.items():
        # A module's own packages are not edges: Python runs takd_search/__init__ before
        # any takd_search.x, whatever x imports, so `from takd_search import __version__`
        # in a module that takd_search/__init__ imports lazily is no cycle one could cut.
        deps = {
            d
            for d in _imports(p, m, top_level_only)
            if d in mods and d != m and not m.startswith(f"{d}.")
        }
        graph[m] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_module_level_imports_have_no_cycle():
    cycle = _cycle(_graph(top_level_only=True))
    assert cycle is None, " -> ".join(cycle or [])


def test_no_cycle_at_any_level():
    """Function-level imports too (issue 23: cli -> commands -> cluster -> driver -> cli
    was one): a lazy import is for speed or optional packages, never to hide a cycle."""
    cycle = _cycle(_graph(top_level_only=False))
    assert cycle is None, " -> ".join(cycle or [])


def test_only_the_entry_points_import_the_cli():
    """The CLI is the top: only the programs that start it import it (`python -m
    takd_search`, the job's `python -m takd_search.cluster job`)."""
    users = {m for m, deps in _graph(top_level_only=False).items() if "takd_search.cli" in deps}
    assert users == {"takd_search.__main__", "takd_search.cluster.__main__"}, users


def test_the_cli_is_imported_by_nothing_at_module_level():
    users = [m for m, deps in _graph(top_level_only=True).items() if "takd_search.cli" in deps]
    assert users == ["takd_search.__main__"], users  # `python -m takd_search` is the CLI


@pytest.mark.parametrize("module", sorted(_modules()))
def test_only_search_and_cluster_import_ray(module):
    path = _modules()[module]
    rays = {d for d in _imports(path, module, top_level_only=False) if d.split(".")[0] == "ray"}
    if module.startswith(("takd_search.search", "takd_search.cluster")):
        return
    assert not rays, f"{module} imports {sorted(rays)}"


def test_modules_stay_small():
    big = {
        m: n
        for m, p in _modules().items()
        if (n := len(p.read_text().splitlines())) > MAX_LINES and m not in ONE_STORY
    }
    assert not big, big


def test_the_cycle_check_finds_a_cycle():
    """The checker itself: a made-up graph with a cycle a -> b -> c -> a is caught."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_private_name_is_imported_from_another_module():
    """A name with a leading underscore is its module's own: another module that needs it
    gets a public name (imports at every level, read with ast)."""
    found = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("takd_search"):
                found += [
                    f"{module}: from {node.module} import {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not found, found


def test_no_function_in_search_runs_past_80_lines():
    """The search package reads as short procedures (run.py tells the run's story)."""
    long = []
    for module, path in _modules().items():
        if not module.startswith("takd_search.search."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                n = body[-1].end_lineno - body[0].lineno + 1
                if n > 80:
                    long.append(f"{module}.{node.name}: {n} lines")
    assert not long, long
