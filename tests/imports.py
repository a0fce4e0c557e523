"""The project's import graph, read from the source (every ``import``, also inside functions),
so rules hold for lazy imports too. Modules are dotted names: ``cnnpipe.data.fetch``, ``stages.evaluate``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

from .pipeline import REPO

ROOTS = {"cnnpipe": REPO / "src", "stages": REPO, "serving": REPO, "benchmarks": REPO, "tests": REPO}


def module_file(name: str) -> Path | None:
    """The file of a project module (a package's ``__init__.py``), or None if it is not ours."""
    top = name.split(".")[0]
    if top not in ROOTS:
        return None
    base = ROOTS[top].joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    for top, root in ROOTS.items():
        if path.is_relative_to(root / top):
            parts = path.relative_to(root).with_suffix("").parts
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(f"{path} is not a project module")


def project_modules(top: str) -> list[str]:
    return sorted(module_name(p) for p in (ROOTS[top] / top).rglob("*.py") if "_pb2" not in p.name)


@cache
def direct_imports(name: str) -> frozenset[str]:
    """Project modules that ``name`` imports anywhere in its file."""
    path = module_file(name)
    if path is None:
        return frozenset()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if module_file(t) is not None)
    return frozenset(found)


def with_packages(names: set[str]) -> set[str]:
    """Add the parent packages, whose ``__init__`` runs on import."""
    out = set(names)
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts)) if module_file(".".join(parts[:i])))
    return out


def closure(name: str) -> set[str]:
    """Every project module that importing ``name`` (and calling into it) can load."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(with_packages(set(direct_imports(current))) - seen)
    return with_packages(seen)


def loaded_after(
    code: str, watched: tuple[str, ...], *args: str, env: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """What a fresh interpreter printed running ``code`` (``args`` as ``sys.argv[1:]``) against this
    checkout, and which of ``watched`` were then in ``sys.modules``."""
    probe = f"{code}\nimport sys; print([m for m in {watched!r} if m in sys.modules])"
    environ = {**(env or os.environ), "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, env=environ, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    *printed, loaded = result.stdout.strip().splitlines()
    return printed, ast.literal_eval(loaded)
