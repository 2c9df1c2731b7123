"""The layers of the code base, enforced: imports point down, and no two modules import each other.

Every module of ``critics`` and ``data_pipelines`` belongs to one floor (``LAYERS``, lowest first;
the README's Layout section says why). An import, at module level or inside a function (a lazy
import is still a dependency), may point to the same floor or a lower one, never up; and the
graph of imports between modules has no cycle, not even through ``TYPE_CHECKING`` blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("critics", "data_pipelines")
# floor -> the module prefixes on it; a module belongs to the longest prefix that matches it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("data", ("data_pipelines",)),
    (
        "models",
        (
            "critics",
            "critics.config",
            "critics.models",
            "critics.vlm",
            "critics.tiny",
            "critics.plots",
            "critics.cards",
        ),
    ),
    ("judging", ("critics.judging",)),
    ("serving", ("critics.serving", "critics.actors")),
    ("rewards", ("critics.rewards",)),
    ("eval", ("critics.eval",)),
    ("recipes", ("critics.recipes", "critics.onpolicy")),
    ("demos", ("critics.demo", "critics.demo_policy", "critics.demo_vlm")),
    ("cli", ("critics.cli",)),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def floor(module: str) -> int:
    """The index of the module's floor in ``LAYERS`` (KeyError for a module on no floor)."""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    if best is None:
        raise KeyError(module)
    return best[0]


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports (``from a.b import c`` names ``a.b.c`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    edges = {name: imports(path, known) - {name} for name, path in found.items()}
    # a submodule importing its own package's __init__ is wiring, not a dependency of the floor
    return {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in edges.items()}


def test_every_module_has_a_floor():
    missing = [name for name in modules() if _floorless(name)]
    assert not missing, f"modules on no floor of LAYERS: {missing}"


def _floorless(name: str) -> bool:
    try:
        floor(name)
    except KeyError:
        return True
    return False


def test_imports_point_down():
    upward = [
        f"{source} ({LAYERS[floor(source)][0]}) imports {target} ({LAYERS[floor(target)][0]})"
        for source, targets in graph().items()
        for target in sorted(targets)
        if floor(target) > floor(source)
    ]
    assert not upward, "imports that point up a floor:\n" + "\n".join(upward)


def test_data_pipelines_never_imports_critics_and_nothing_imports_the_cli():
    edges = graph()
    assert not [
        s for s, ts in edges.items() if s.startswith("data_pipelines") and any(t.startswith("critics") for t in ts)
    ]
    assert not [s for s, ts in edges.items() if "critics.cli" in ts]


def test_no_import_cycles():
    cycles = strongly_connected(graph())
    assert not cycles, "modules that import each other:\n" + "\n".join(" -> ".join(c) for c in cycles)


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components of more than one module (each one a cycle)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


@pytest.mark.parametrize(
    ("edges", "cycles"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_the_cycle_finder_finds_cycles(edges, cycles):
    assert strongly_connected(edges) == cycles


def test_the_floor_check_sees_a_lazy_upward_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from critics.recipes.common import load_data\n")
    found = imports(source, {"critics.recipes.common", "critics.recipes"})
    assert found == {"critics.recipes.common"} and floor("critics.recipes.common") > floor("critics.judging.tasks")
