"""The layout's rules, checked on the source with the stdlib ``ast`` (no import needed).

* no product module over :data:`MAX_LINES` lines (generated ``symbolsvc/v1`` aside);
* no import cycle between modules of ``symbolsvc``, nor between its packages
  (``registry``, ``log``, ``verify``, ``services`` and the top-level modules);
* the storage wing does not reach up: ``registry`` imports nothing of ``log``, the core,
  the servicers or the server;
* the auditor's verifier (``symbolsvc.verify``) imports nothing of the server side, and
  importing it in a fresh interpreter loads no server module;
* no module outside ``symbolsvc.registry`` compares anything with a backend's name:
  the backend seam (``registry/backends.py``) is the only place that tells them apart;
  no test or bench does either (the tests' per-backend objects, tests/helpers/backends.py,
  are looked up by name, never compared with one).

Every ``import`` statement counts, also those inside functions and under
``TYPE_CHECKING``: a dependency drawn in a type is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "symbolsvc"
MAX_LINES = 450
BACKEND_NAMES = {"sqlite", "postgres", "postgresql"}

# What the verifier may import from symbolsvc: itself and the pure, shared parts.
VERIFY_ALLOWED = {
    "symbolsvc", "symbolsvc.log", "symbolsvc.log.errors", "symbolsvc.log.hashing",
    "symbolsvc.log.compact", "symbolsvc.log.verification", "symbolsvc.log.checkpoint",
    "symbolsvc.log.cosignature",
    "symbolsvc.records", "symbolsvc.policytable", "symbolsvc.inquiry",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))
            if "v1" not in p.relative_to(ROOT).parts}


def _is_package(name: str) -> bool:
    return _modules()[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    if not _is_package(importer):
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str) -> Iterator[str]:
    """The symbolsvc modules ``name`` imports (generated code excluded)."""
    tree = ast.parse(_modules()[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node)
            targets = [base]
            targets += [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in _modules()]
        for target in targets:
            while target and target not in _modules():  # a name inside a module
                target = target.rpartition(".")[0]
            if target.startswith("symbolsvc") and target != name:
                yield target


@cache
def _graph() -> dict[str, set[str]]:
    return {name: set(_imports(name)) for name in _modules()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package_of(name: str) -> str:
    """``registry`` for symbolsvc.registry.sqlite, ``core`` for symbolsvc.core."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_product_module_is_over_the_size_limit() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines())
             for name, path in _modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_no_import_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = {}
    for name, targets in _graph().items():
        src = _package_of(name)
        packages.setdefault(src, set()).update(
            t for t in map(_package_of, targets) if t not in (src, "symbolsvc"))
    assert _cycles(packages) == []


def test_the_storage_wing_does_not_reach_up() -> None:
    upward = {"log", "core", "services", "server", "workers", "disclosure", "interceptor",
              "cli", "verify"}
    wrong = {(name, t) for name, targets in _graph().items() if _package_of(name) == "registry"
             for t in targets if _package_of(t) in upward}
    assert wrong == set()


def _closure(start: set[str]) -> set[str]:
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_graph()[name])
    return seen


def test_the_verifier_imports_nothing_of_the_server() -> None:
    verify = {n for n in _modules() if n == "symbolsvc.verify" or n.startswith("symbolsvc.verify.")}
    assert verify, "symbolsvc.verify is missing"
    reached = _closure(verify) - verify
    assert reached <= VERIFY_ALLOWED, sorted(reached - VERIFY_ALLOWED)


def test_importing_the_verifier_loads_no_server_module() -> None:
    code = "import sys, symbolsvc.verify; print('\\n'.join(sys.modules))"
    out = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, timeout=60).stdout.split())
    loaded = {m for m in out if m.split(".")[0] == "symbolsvc"
              and not m.startswith("symbolsvc.verify")}
    assert loaded <= VERIFY_ALLOWED, sorted(loaded - VERIFY_ALLOWED)
    assert "grpc" not in out and "psycopg" not in out


def _backend_comparisons(path: Path) -> list[int]:
    """Lines of ``path`` that compare something with a backend's name (``x == "sqlite"``,
    ``x in ("postgres", ...)``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for o in list(operands):
                if isinstance(o, ast.Tuple | ast.List | ast.Set):
                    operands += o.elts
            if any(isinstance(c, ast.Constant) and c.value in BACKEND_NAMES for c in operands):
                lines.append(node.lineno)
    return lines


def test_only_the_registry_tells_backends_apart() -> None:
    offenders = []
    for name, path in _modules().items():
        if _package_of(name) == "registry":
            continue
        offenders += [f"{name}:{line}" for line in _backend_comparisons(path)]
    assert offenders == []


def test_tests_tell_backends_apart_only_through_the_seams() -> None:
    """Tests and benches neither: what differs per backend is a method of the tests' own
    per-backend objects (tests/helpers/backends.py) or of the product's seam."""
    offenders = []
    for tree in (ROOT.parent / "tests", ROOT.parent / "bench"):
        for path in sorted(tree.rglob("*.py")):
            offenders += [f"{path.relative_to(ROOT.parent)}:{line}"
                          for line in _backend_comparisons(path)]
    assert offenders == []


def test_the_backend_check_sees_a_comparison(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('if b == "sqlite":\n    pass\nif b in ("x", "postgres"):\n    pass\n'
                     'if TABLE["postgres"]:\n    pass\n')
    assert _backend_comparisons(probe) == [1, 3]


def test_the_checker_sees_a_cycle() -> None:
    """The cycle finder itself: a graph with a cycle is reported, a DAG is not."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
