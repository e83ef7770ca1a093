"""The rooms of ARCHITECTURE.md hold: every module imports only the rooms below it, and no module
imports itself back through others (no cycle), lazy imports inside functions included.

An AST walk, no import side effects: the rule is checked on the source as written.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("worker", "kkt_drivers")

#: room → the rooms it may import (besides itself); kept in step with ARCHITECTURE.md
ALLOWED: dict[str, set[str]] = {
    "kkt_drivers": set(),                                    # a library: never imports the worker
    "base": {"kkt_drivers"},                                 # errors, defaults, settings, log, signals
    "shop": {"base", "kkt_drivers"},                         # kkt_drivers.json_text for the rows' snapshot
    "receipts": {"shop", "base", "kkt_drivers"},
    "ledger": {"receipts", "shop", "base", "kkt_drivers"},
    "ingest": {"ledger", "receipts", "shop", "base", "kkt_drivers"},
    "fiscal": {"ledger", "base", "kkt_drivers"},
    "reports": {"ledger", "receipts", "base", "kkt_drivers"},     # totals and reconciliation, read-only
    "ops": {"ledger", "base", "kkt_drivers"},                     # health, metrics, alerts, callbacks, systemd
    "web": {"ops", "reports", "ledger", "base"},                  # the accountant's page
    "app": {"fiscal", "ingest", "ledger", "receipts", "shop", "ops", "reports", "web", "base", "kkt_drivers"},
    "loop": {"app", "ledger", "ops", "base"},
    "demo": set(),
    "cli": {"app", "loop", "fiscal", "ingest", "ledger", "receipts", "shop", "ops", "reports", "web", "base",
            "demo", "kkt_drivers"},
}
BASE = {"worker", "worker.errors", "worker.defaults", "worker.settings", "worker.log", "worker.signals"}


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = modules()


def room(module: str) -> str:
    if module.startswith("kkt_drivers"):
        return "kkt_drivers"
    if module in BASE:
        return "base"
    if module == "worker.__main__":
        return "cli"
    return module.split(".")[1]


def imports_of(module: str) -> set[str]:
    """The project modules *module* imports (a ``from package import submodule`` names the submodule)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name in MODULES and name != module:
                found.add(name)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module: str) -> None:
    """Every module can be imported on its own (no hidden order dependency)."""
    if module.endswith("__main__"):
        pytest.skip("running it starts the CLI")
    importlib.import_module(module)


def test_rooms_import_only_the_rooms_below_them() -> None:
    """Each room imports only what ARCHITECTURE.md allows it."""
    bad = sorted(f"{m} → {dep}" for m, deps in GRAPH.items() for dep in deps
                 if room(dep) != room(m) and room(dep) not in ALLOWED[room(m)])
    assert bad == []


def test_no_import_cycles() -> None:
    """No module reaches itself through its imports (depth-first search for a back edge)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(GRAPH[m]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert cycles == []


def test_the_worker_top_level_stays_small() -> None:
    """At most a dozen modules directly in worker/; the rest live in their rooms."""
    top = [p for p in (ROOT / "worker").glob("*.py")]
    assert len(top) <= 12, sorted(p.name for p in top)
