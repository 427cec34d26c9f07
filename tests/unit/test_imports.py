"""The package structure holds: no import cycles, layers only import downwards, re-exports resolve.

Every `import` counts, module level or inside a function: a function-level
import that closes a cycle is still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("pipelines", "models", "jobs", "dags", "benchmarks")
# Who may import whom (dags -> jobs -> pipelines -> models; benchmarks use the library like a user).
ALLOWED = {
    "models": {"models"},
    "pipelines": {"pipelines", "models"},
    "jobs": {"jobs", "pipelines", "models"},
    "dags": {"jobs", "pipelines", "models"},
    "benchmarks": {"benchmarks", "jobs", "pipelines", "models"},
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}


def _imports(path: pathlib.Path, module: str, known: set[str]) -> set[str]:
    """The project modules `module` imports (`from a.b import c` counts a.b.c when that is a module)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative import
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(anchor[: len(anchor) - node.level + 1] + [node.module])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known and name != module}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, set(modules)) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_layers_only_import_downwards():
    wrong = [f"{module} imports {target}" for module, targets in _graph().items() for target in targets
             if target.split(".")[0] not in ALLOWED[module.split(".")[0]]]
    assert wrong == []


@pytest.mark.parametrize("package", ["pipelines.lakehouse", "pipelines.ingest", "pipelines.items",
                                     "pipelines.behavior", "pipelines.retrieval", "pipelines.ranking",
                                     "pipelines.evaluation"])
def test_every_re_exported_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__, package
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        module.nope  # noqa: B018


def test_no_job_script_shadows_a_package():
    # spark-submit runs jobs/<job>.py as a script: jobs/ becomes sys.path[0], so jobs/models.py
    # would be what `import models` finds in every job.
    top_level = {p.name for p in REPO.iterdir() if (p / "__init__.py").exists()}
    scripts = {p.stem for p in (REPO / "jobs").glob("*.py")}
    assert scripts & top_level == set()


def test_a_named_command_imports_its_own_job_only_and_help_lists_every_job():
    import subprocess
    import sys

    from jobs.cli import COMMANDS

    probe = ("import sys\nfrom jobs.cli import main\ntry:\n    main([{args}])\nexcept SystemExit:\n    pass\n"
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('jobs.'))))")

    def loaded(args: str) -> tuple[set[str], str]:
        done = subprocess.run([sys.executable, "-c", probe.format(args=args)], capture_output=True, text=True,
                              cwd=REPO, check=True)
        return set(done.stdout.split()), done.stdout

    jobs, _ = loaded("'sql', '--help'")
    assert "jobs.sql" in jobs and not jobs & (set(COMMANDS.values()) - {"jobs.sql"})
    jobs, printed = loaded("'--help'")
    assert set(COMMANDS.values()) <= jobs and all(name in printed for name in COMMANDS)
