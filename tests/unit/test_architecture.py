"""The code layout's rules, checked: who may import whom, what the worker loads, how big a unit may grow.

Every import counts: module level, inside a function, and ``importlib.import_module("...")``
with a literal name.  A failure names the file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = ("ground", "schema", "spool", "processor", "ops", "web", "spoolscribe")

# What each floor may import (besides itself and third-party code).  DESIGN.md "Code layout".
MAY_IMPORT: dict[str, frozenset[str]] = {
    "ground": frozenset(),
    "schema": frozenset({"ground"}),
    "spool": frozenset({"ground"}),
    "processor": frozenset({"ground", "schema", "spool"}),
    "ops": frozenset({"ground", "schema", "spool", "processor"}),
    "web": frozenset({"ground", "schema", "spool", "processor"}),  # nothing imports web but spoolscribe/
    "spoolscribe": frozenset(PACKAGES),  # the composition root assembles everything
}
# ops reaches processor through this small public surface only.
PROCESSOR_SURFACE = frozenset(
    {"processor.argtypes", "processor.config", "processor.liveness", "processor.status", "processor.views"}
)
# The worker's folder (processor/worker/) reaches the rest of processor only for this shared vocabulary.
WORKER_SHARED = frozenset({"processor.protocol", "processor.languages", "processor.options"})
# web reaches processor through this small public surface only (it reads, appends commands, hands over).
WEB_PROCESSOR_SURFACE = frozenset(
    {
        "processor.config",
        "processor.liveness",
        "processor.options",
        "processor.status",
        "processor.submit",
        "processor.views",
    }
)
SURFACES = {"ops": PROCESSOR_SURFACE, "web": WEB_PROCESSOR_SURFACE}
# The worker process: no store, no daemon-side machinery.
WORKER_ENTRY = "processor.worker.main"
WORKER_MAY_NOT_LOAD = ("schema", "ops", "spoolscribe", "processor.daemon", "processor.intake", "psycopg", "apscheduler")

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# Kept whole on purpose (say why): the fold's transition table reads best as one flat table.
LONG_FUNCTIONS_ALLOWED = frozenset({"schema.jobs._changes"})  # one branch per event type, each a few lines


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    target: str  # dotted module name as written (resolved for relative imports)


def modules() -> Iterator[Path]:
    for pkg in PACKAGES:
        yield from sorted((SRC / pkg).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path).split(".")
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here if is_pkg else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            yield Import(path, node.lineno, mod)
            for alias in node.names:  # `from processor import liveness` imports processor.liveness
                yield Import(path, node.lineno, f"{mod}.{alias.name}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Import(path, node.lineno, node.args[0].value)


def where(imp: Import) -> str:
    return f"{imp.path.relative_to(SRC.parent)}:{imp.line}"


def layering_problems() -> list[str]:
    found: list[str] = []
    for path in modules():
        own = module_name(path).split(".")[0]
        for imp in imports_of(path):
            top = imp.target.split(".")[0]
            in_worker = module_name(path).startswith("processor.worker")
            if top not in PACKAGES or (top == own and not in_worker):
                continue
            problem = None
            if top == own:
                if _daemon_side(imp.target):
                    problem = (
                        f"{where(imp)}: processor/worker/ imports only itself and {', '.join(sorted(WORKER_SHARED))}"
                    )
            elif top not in MAY_IMPORT[own]:
                problem = f"{where(imp)}: {own} may not import {top}"
            elif own in SURFACES and top == "processor":
                allowed = SURFACES[own]
                surface = ".".join(imp.target.split(".")[:2])
                if surface != "processor" and surface not in allowed and _is_module(surface):
                    problem = f"{where(imp)}: {own} uses processor only through {', '.join(sorted(allowed))}"
            if problem and not (found and found[-1].startswith(problem)):  # one line per import statement
                found.append(f"{problem} ({imp.target})")
    return found


def _daemon_side(target: str) -> bool:
    surface = ".".join(target.split(".")[:2])
    if surface in ("processor", "processor.worker") or surface in WORKER_SHARED:
        return False
    return _is_module(surface)


def _is_module(dotted: str) -> bool:
    base = SRC.joinpath(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def test_each_floor_imports_only_the_floors_below_it() -> None:
    assert layering_problems() == []


def test_no_import_cycle_between_modules() -> None:
    """A cycle (two CLIs reaching into each other) makes import order matter and hides the layering."""
    graph: dict[str, set[str]] = {}
    names = {module_name(p) for p in modules()}
    for path in modules():
        deps = graph.setdefault(module_name(path), set())
        for imp in imports_of(path):
            if imp.target in names and imp.target != module_name(path):
                deps.add(imp.target)
    cycles = _cycles(graph)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components larger than one module (Tarjan), each as a path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_worker_process_loads_no_store_and_no_daemon_machinery() -> None:
    """Checked in a fresh interpreter, as the worker starts: what it loads is what it may touch."""
    probe = "import importlib, json, sys; importlib.import_module(sys.argv[1]); print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe, WORKER_ENTRY],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in WORKER_MAY_NOT_LOAD)]
    assert bad == [], f"importing {WORKER_ENTRY} loads {bad}"


def test_no_module_over_500_lines_and_no_function_over_80() -> None:
    found = []
    for path in modules():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            found.append(f"{path.relative_to(SRC.parent)}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                name = f"{module_name(path)}.{node.name}"
                if length > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS_ALLOWED:
                    found.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: {node.name} has {length} lines")
    assert found == []


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("from processor.daemon import Daemon\n", "spool may not import processor"),
        ("def f():\n    import ops.cli\n", "spool may not import ops"),
        ("import importlib\nimportlib.import_module('schema.store')\n", "spool may not import schema"),
    ],
)
def test_the_rules_catch_every_kind_of_import(
    tmp_path: Path, source: str, rule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checker itself: a breach in any spelling is found (a rule that cannot fail checks nothing)."""
    fake = tmp_path / "src"
    (fake / "spool").mkdir(parents=True)
    (fake / "spool" / "bad.py").write_text(source)
    for pkg in PACKAGES:
        (fake / pkg).mkdir(exist_ok=True)
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    found = layering_problems()
    assert len(found) == 1 and rule in found[0] and "src/spool/bad.py:" in found[0]


def test_the_worker_folder_rule_catches_a_daemon_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "src"
    for pkg in PACKAGES:
        (fake / pkg).mkdir(parents=True)
    (fake / "processor" / "worker").mkdir()
    (fake / "processor" / "daemon.py").write_text("")
    (fake / "processor" / "worker" / "bad.py").write_text(
        "from processor import daemon\nfrom processor import protocol\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    found = layering_problems()
    assert len(found) == 1 and "processor/worker/ imports only itself" in found[0] and "bad.py:1" in found[0]
