"""The import layering of ``relay/`` follows the table in docs/explanation/architecture.md.

Every import under ``relay/`` counts, wherever it is written (module top, inside a function,
under ``TYPE_CHECKING``): the graph of packages has no cycle, no module imports a layer
above its own, and the pure layer imports nothing with side effects.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELAY = ROOT / "relay"
DOCS = ROOT / "docs" / "explanation" / "architecture.md"


@dataclass(frozen=True)
class Layer:
    name: str
    units: tuple[str, ...]
    forbidden: tuple[str, ...]  # modules (outside relay) this layer must not import


def read_layers(text: str) -> list[Layer]:
    """The layer table after the ``<!-- layers`` marker, top layer first."""
    table = text.split("<!-- layers", 1)[1].split("\n\n", 1)[0]
    layers = []
    for row in table.splitlines()[3:]:
        name, units, rule = (cell.strip() for cell in row.strip("|").split("|"))
        banned = re.search(r"\(no ([^)]*)\)", rule)
        layers.append(
            Layer(
                name=name,
                units=tuple(re.findall(r"`([^`]+)`", units)),
                forbidden=tuple(re.findall(r"`([^`]+)`", banned.group(1))) if banned else (),
            )
        )
    return layers


LAYERS = read_layers(DOCS.read_text(encoding="utf-8"))
RANK = {unit: n for n, layer in enumerate(LAYERS) for unit in layer.units}


def module_name(path: Path) -> str:
    parts = path.relative_to(RELAY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def unit_of(module: str) -> str | None:
    """The table's most specific entry for ``module`` (``cleanup.sources`` before ``cleanup``)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    return None


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports (absolute names) with its line number."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    parent = ["relay", *package.split(".")] if package not in ("", "__init__") else ["relay"]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = parent[: len(parent) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            yield base, node.lineno
            for alias in node.names:  # ``from relay.cli import sendmail``: a module
                inner = ROOT.joinpath(*base.split("."), alias.name)
                if inner.is_dir() or inner.with_suffix(".py").is_file():
                    yield f"{base}.{alias.name}", node.lineno


@dataclass(frozen=True)
class Edge:
    source: str  # unit
    target: str  # unit
    where: str  # file:line


def relay_files() -> list[Path]:
    return sorted(RELAY.rglob("*.py"))


def edges() -> list[Edge]:
    found = []
    for path in relay_files():
        source = unit_of(module_name(path))
        for name, line in imports(path):
            if name.split(".")[0] != "relay" or name == "relay":
                continue
            target = unit_of(name.removeprefix("relay."))
            if source is not None and target is not None and target != source:
                found.append(Edge(source, target, f"{path.relative_to(ROOT)}:{line}"))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_and_module_has_a_layer() -> None:
    placed = {module_name(path) for path in relay_files() if unit_of(module_name(path)) is None}
    assert not placed, f"add these to the layer table in {DOCS.name}: {sorted(placed)}"


def test_the_table_names_only_what_exists() -> None:
    for unit in RANK:
        path = RELAY.joinpath(*unit.split("."))
        assert unit == "__init__" or path.is_dir() or path.with_suffix(".py").is_file(), unit


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{edge.where}: {edge.source} ({LAYERS[RANK[edge.source]].name}) imports "
        f"{edge.target} ({LAYERS[RANK[edge.target]].name})"
        for edge in edges()
        if RANK[edge.target] < RANK[edge.source]
    ]
    assert not upward, "\n".join(upward)


def test_packages_import_each_other_without_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for edge in edges():
        graph.setdefault(edge.source, set()).add(edge.target)
    assert cycles(graph) == []


def test_cli_modules_import_each_other_without_cycles() -> None:
    """The verbs share relay/cli/options.py instead of importing one another."""
    graph: dict[str, set[str]] = {}
    for path in (RELAY / "cli").glob("*.py"):
        for name, _ in imports(path):
            if name.startswith("relay.cli."):
                graph.setdefault(module_name(path), set()).add(name.removeprefix("relay."))
    assert cycles(graph) == []


@pytest.mark.parametrize("layer", [layer for layer in LAYERS if layer.forbidden], ids=str)
def test_pure_layer_imports_nothing_with_side_effects(layer: Layer) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in relay_files()
        if unit_of(module_name(path)) in layer.units
        for name, line in imports(path)
        if name.split(".")[0] in layer.forbidden
    ]
    assert not bad, "\n".join(bad)


def test_gmail_imports_nothing_else_from_the_relay() -> None:
    outside = [f"{edge.where}: {edge.target}" for edge in edges() if edge.source == "gmail"]
    assert not outside, "\n".join(outside)


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    """The checks above can fail: a circle and an upward edge are found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert RANK["queue"] > RANK["config"]  # queue importing config would be reported
    assert unit_of("cleanup.sources") == "cleanup.sources"
    assert unit_of("cleanup.pipeline") == "cleanup"
