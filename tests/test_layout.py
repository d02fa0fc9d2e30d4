"""The code's layout as the architecture page draws it: no import circle, dependencies
pointing one way, small functions in the front doors, no oversized module."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gis", "api", "maps")
MAX_FUNCTION_LINES = 80  # in api/ and maps/
MAX_MODULE_LINES = 800


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, at any depth of its code (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            for a in node.names:  # a submodule imported by name is an edge to it
                sub = f"{base}.{a.name}"
                found.add(sub if sub in MODULES else base)
    return found


def _graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for name, path in MODULES.items():
        g.add_node(name)
        for target in _imports(name, path):
            if target in MODULES and target != name:
                g.add_edge(name, target)
    return g


def _top(name: str) -> str:
    return name.split(".")[0]


def test_no_import_circle():
    g = _graph()
    # the walk sees the real dependencies (a walk that found nothing would pass vacuously)
    assert g.has_edge("api.http.app", "api.http.features") and g.has_edge(
        "gis.store", "gis.store.gpkg"
    )
    assert g.number_of_edges() > 150
    cycles = [c for c in nx.strongly_connected_components(g) if len(c) > 1]
    assert cycles == []


# (importer prefix, forbidden prefix, allowed exceptions: importer → target)
RULES = [
    ("gis", ("api", "maps", "fastapi", "starlette", "typer", "folium", "rich", "uvicorn"), {}),
    ("maps", ("api", "fastapi", "typer"), {}),
    ("api.http", ("api.cli",), {}),
    # the command line starts the server, and nothing else of it
    ("api.cli", ("api.http",), {"api.cli.data": {"api.http"}}),
]


@pytest.mark.parametrize("importer, forbidden, allowed", RULES, ids=[r[0] for r in RULES])
def test_dependencies_point_one_way(importer, forbidden, allowed):
    bad = []
    for name, path in MODULES.items():
        if name != importer and not name.startswith(importer + "."):
            continue
        for target in _imports(name, path):
            if target in allowed.get(name, set()):
                continue
            if any(target == f or target.startswith(f + ".") for f in forbidden):
                bad.append(f"{name} imports {target}")
    assert bad == []


def test_the_checks_see_a_violation(tmp_path):
    """The walk itself: a module importing the web layer is caught (so the rules can fail)."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from api.http import create_app\n    import folium\n")
    assert {"api.http", "folium"} <= _imports("gis.probe", probe)


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (f"{path.relative_to(ROOT)}:{n.lineno} {n.name}", n.end_lineno - n.lineno + 1)  # type: ignore[operator]
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_front_door_functions_are_short():
    long = [
        f"{where} ({n} lines)"
        for name, path in MODULES.items()
        if _top(name) in ("api", "maps")
        for where, n in _functions(path)
        if n > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_no_module_is_oversized():
    big = {
        str(p.relative_to(ROOT)): n
        for p in MODULES.values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert big == {}
