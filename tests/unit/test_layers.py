"""The layer rules of docs/architecture.md, read from the imports of every module under aioq/."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "aioq"

# Third-party packages and the only places that may import them.
CONFINED = {
    "nats": ("aioq._nats",),
    "typer": ("aioq.cli",),
    "uvloop": ("aioq.cli",),
    "starlette": ("aioq.dashboard",),
    "jinja2": ("aioq.dashboard",),
    "uvicorn": ("aioq.dashboard",),
    "prometheus_client": ("aioq.metrics",),
    "opentelemetry": ("aioq.tracing",),
}
# Edges: they may import the testing package and the app.
EDGES = (
    "aioq.cli",
    "aioq.testing",
    "aioq.dashboard",
    "aioq.embedded",
    "aioq.local_cluster",
    "aioq.__main__",
)
# Composition: where the app is assembled; with the edges, the only importers of aioq.app.
COMPOSITION = ("aioq", "aioq.app", "aioq.task", "aioq.context", "aioq.runner")
# Role modules that still take the app object; they move to narrow interfaces.
APP_USERS_TO_NARROW: tuple[str, ...] = ()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def within(name: str, owners: tuple[str, ...]) -> bool:
    return any(name == owner or name.startswith(owner + ".") for owner in owners)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _named(node: ast.Import | ast.ImportFrom, module: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module.split(".")
        base = ".".join([*package[: len(package) - node.level + 1], base]).strip(".")
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names)


def _blocks(node: ast.stmt) -> Iterator[list[ast.stmt]]:
    """The statement blocks nested in `node` that run when `node` runs (not functions)."""
    for name in ("body", "orelse", "finalbody"):
        inner = getattr(node, name, None)
        if isinstance(inner, list):
            yield [n for n in inner if isinstance(n, ast.stmt)]
    for handler in getattr(node, "handlers", []):
        yield handler.body


def imports(tree: ast.Module, module: str) -> Iterator[tuple[str, bool]]:
    """Every imported module name, and whether it is imported at run time at module level."""

    def visit(nodes: list[ast.stmt], runtime: bool) -> Iterator[tuple[str, bool]]:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield from ((name, runtime) for name in _named(node, module))
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                yield from visit(node.body, False)
                yield from visit(node.orelse, runtime)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from visit(node.body, False)  # runs later, not at import
            else:
                for block in _blocks(node):
                    yield from visit(block, runtime)

    yield from visit(tree.body, True)


def read_graph() -> dict[str, list[tuple[str, bool]]]:
    graph: dict[str, list[tuple[str, bool]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = module_name(path)
        graph[name] = list(imports(ast.parse(path.read_text(), str(path)), name))
    return graph


GRAPH = read_graph()


def violations(graph: dict[str, list[tuple[str, bool]]]) -> list[str]:
    """Every broken rule, one line each."""
    found: list[str] = []
    for module, imported in graph.items():
        for target, _ in imported:
            top = target.split(".")[0]
            if top in CONFINED and not within(module, CONFINED[top]):
                found.append(f"{module} imports {target} (only {CONFINED[top]} may)")
            if within(target, ("aioq.testing",)) and not within(module, EDGES):
                found.append(f"{module} imports {target}: the core never imports aioq.testing")
            if (
                within(target, ("aioq.app",))
                and not within(module, EDGES)
                and module not in COMPOSITION
                and not within(module, APP_USERS_TO_NARROW)
            ):
                found.append(f"{module} imports {target}: only composition and edges may")
    found.extend(f"runtime import cycle: {' -> '.join(c)}" for c in cycles(graph))
    return found


def cycles(graph: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """Cycles of module-level run-time imports between aioq modules."""
    edges = {
        module: sorted({t for t, runtime in imported if runtime and t in graph and t != module})
        for module, imported in graph.items()
    }
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in edges[module]:
            if state.get(target) == 1:
                found.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return found


def test_the_layer_rules_hold() -> None:
    assert violations(GRAPH) == []


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("aioq.job", "import nats"),
        ("aioq.app", "import typer"),
        ("aioq.wire", "import starlette"),
        ("aioq.worker.slots", "import jinja2"),
        ("aioq.cli.queue", "import uvicorn"),
        ("aioq.app", "import prometheus_client"),
        ("aioq.task", "from opentelemetry import trace"),
        ("aioq.runner", "from aioq.testing import MemoryBroker"),
        ("aioq.wire", "from aioq.app import Aarq"),
        ("aioq.errors", "from aioq.app import Aarq"),  # also a cycle
        ("aioq.naming", "from aioq import __version__"),  # a cycle through the package
    ],
)
def test_each_rule_catches_a_breaking_import(module: str, line: str) -> None:
    graph = dict(GRAPH)
    tree = ast.parse(line)
    graph[module] = [*graph[module], *imports(tree, module)]
    assert violations(graph), f"{line!r} in {module} broke no rule"


def test_a_type_checking_import_is_no_runtime_cycle() -> None:
    graph = dict(GRAPH)
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import aioq.task\n")
    graph["aioq.errors"] = [*graph["aioq.errors"], *imports(tree, "aioq.errors")]
    assert not cycles(graph)


def test_the_memory_backend_loads_no_nats() -> None:
    code = "import sys\nfrom aioq.testing import MemoryBroker\nprint('nats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_only_the_app_changes_its_settings_and_names() -> None:
    writes: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in (t for group in targets for t in _flat(group)):
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr in ("settings", "names")
                    and not (isinstance(target.value, ast.Name) and target.value.id == "self")
                ):
                    writes.append(f"{module_name(path)}:{node.lineno}")
    assert writes == [], "configure the app with app.configure(...) instead"


def _flat(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, ast.Tuple | ast.List):
        return [t for item in target.elts for t in _flat(item)]
    return [target]


def test_a_worker_without_metrics_or_tracing_loads_neither() -> None:
    code = """
import asyncio, sys
from aioq import Aarq, Context
from aioq.testing import MemoryBroker
from aioq.worker import Worker
from aioq.options import WorkerOptions

app = Aarq()
app.use_broker(MemoryBroker())
done = []

@app.task
async def hello(ctx: Context) -> None:
    done.append(ctx.job_id)

async def main() -> None:
    await hello.enqueue()
    await Worker(app, options=WorkerOptions.for_tests(burst=True)).run()

asyncio.run(main())
loaded = {m.split('.')[0] for m in sys.modules}
print(len(done), sorted(loaded & {'opentelemetry', 'prometheus_client'}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1 []"
