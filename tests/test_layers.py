"""Layers point down (issue 17): every import of src/deepfever is parsed and checked against the declared order.

Counted: module-level, function-local and ``if TYPE_CHECKING:`` imports alike. A type-only import
still ties a lower layer to a higher one (its annotations name a higher concept, and the next edit
makes it a real import), so it is held to the same rule; a lower layer that needs a higher type
takes a protocol or a plain value instead.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "deepfever"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version", "_lazy", "_iterate", "errors", "config", "defaults", "labels"),  # core: light, no numpy/pandas/torch at import
    ("io",),
    ("faces", "models"),
    ("pipeline",),
    ("data", "video"),
    ("api",),
    ("evaluation", "applications", "extraction"),
    ("training", "serve"),
    ("cli",),
    ("__init__", "__main__"),  # the package itself: `import deepfever`, `python -m deepfever`
)
"""Lower layers never import higher ones; units on one line never import each other."""
LAYER = {unit: depth for depth, line in enumerate(LAYERS) for unit in line}
HEAVY = ("numpy", "pandas", "torch")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str | None:
    """Top-level unit of a ``deepfever...`` module name (None for other packages)."""
    parts = module.split(".")
    if parts[0] != "deepfever":
        return None
    if len(parts) == 1:
        return "__init__"
    if parts[1] == "__main__":
        return "__main__"
    top = PACKAGE / parts[1]
    # `from deepfever import X` where X is no module is an attribute of the package itself.
    return parts[1] if top.is_dir() or top.with_suffix(".py").is_file() else "__init__"


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Full names a node imports (``from a import b`` gives ``a.b`` when ``b`` may be a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [f"{source}.{alias.name}" for alias in node.names] + [source]


def import_edges() -> list[tuple[str, str, str, str]]:
    """(importing unit, imported unit, importing module, where) for every import between two units."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        source = "__main__" if module == "deepfever.__main__" else _unit(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = _imported(node, module, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom) and len(names) > 1:
                # `from deepfever.x import y`: the unit is that of deepfever.x, whether y is a module or not.
                names = names[-1:] if names[-1] not in ("deepfever", "") else names[:-1]
            for name in names:
                target = _unit(name)
                if target is not None and target != source:
                    edges.append((source, target, module, f"{path.relative_to(REPO)}:{node.lineno}"))
    return edges


def test_every_top_level_unit_has_a_declared_layer() -> None:
    units = {path.stem if path.suffix == ".py" else path.name for path in PACKAGE.iterdir()
             if (path.suffix == ".py" or (path / "__init__.py").is_file())}
    assert sorted(units - set(LAYER)) == [], "declare the layer of each new top-level module or package in LAYERS"


def test_imports_point_down_the_layers() -> None:
    offending = sorted({f"{module} -> {target} ({where})" for source, target, module, where in import_edges()
                        if LAYER[target] >= LAYER[source]})
    assert offending == [], "imports that point up the layers or between units of one layer:\n" + "\n".join(offending)


def test_no_cycle_among_top_level_units() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target, _, _ in import_edges():
        graph[source].add(target)
    cycles = _strongly_connected(graph)
    assert cycles == [], f"top-level units that import each other (directly or round a cycle): {cycles}"


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Components of more than one unit (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in graph.get(node, ()):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_cli_command_modules_do_not_import_each_other() -> None:
    from deepfever.cli import COMMAND_MODULES

    offending = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        module = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            for name in _imported(node, module, path.name == "__init__.py"):
                parts = name.split(".")
                if parts[:2] == ["deepfever", "cli"] and len(parts) > 2 and parts[2] in COMMAND_MODULES and parts[2] != path.stem:
                    offending.append(f"{module} -> {'.'.join(parts[:3])} ({path.relative_to(REPO)}:{node.lineno})")
    assert offending == [], "shared CLI code belongs in deepfever.cli._common:\n" + "\n".join(sorted(set(offending)))


def _heavy_modules_after(argv: list[str]) -> tuple[int, list[str], str]:
    """Exit code, heavy modules loaded, and output of ``python -m deepfever ARGV`` in a fresh interpreter."""
    script = (
        "import json, runpy, sys\n"
        f"sys.argv = ['deepfever', *{argv!r}]\n"
        "code = 0\n"
        "try:\n"
        "    runpy.run_module('deepfever', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exit:\n"
        "    code = exit.code or 0\n"
        f"print(json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules)]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    code, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    return code, heavy, done.stdout + done.stderr


@pytest.mark.parametrize("command", [None, "extract", "train", "probe", "serve", "export", "benchmark"])
def test_help_imports_no_numpy_pandas_or_torch(command: str | None) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    code, heavy, output = _heavy_modules_after(argv)
    assert code == 0 and "usage: deepfever" in output, output[-2000:]
    assert heavy == [], f"`deepfever {' '.join(argv)}` imported {heavy}; import them inside the command's handler"


def test_no_module_switches_the_matplotlib_backend() -> None:
    """Figures are drawn on ``matplotlib.figure.Figure`` (``deepfever.io.figures``): pyplot's global state and the
    backend of a user's session stay untouched by importing or calling anything of ours."""
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                receiver = ast.unparse(node.func.value)
                if (node.func.attr == "use" and receiver in ("matplotlib", "mpl")) or node.func.attr == "switch_backend":
                    offending.append(f"{where}: {ast.unparse(node.func)}()")
            for name in _imported(node, "deepfever", True):
                if name == "matplotlib.pyplot" or name.startswith("matplotlib.pyplot."):
                    offending.append(f"{where}: imports matplotlib.pyplot (global figures and backend)")
    assert offending == [], "draw on matplotlib.figure.Figure and save with deepfever.io.figures.save_figure:\n" + "\n".join(
        sorted(set(offending)))


def test_core_modules_import_no_numpy_pandas_or_torch() -> None:
    """The bottom layer stays light: every entry point (and ``--help``) may import it for nothing."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {LAYERS[0]!r}:\n"
        "    importlib.import_module('deepfever.' + name)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
