"""dvc.yaml lists, for each stage, exactly the files of src/dvsa that its code runs (docs/design.md,
"Stages"): the modules its script imports (and, for a torchrun stage, dvsa.launch) with everything they
import in turn and the packages' __init__.py on the way, as Python executes them (imports under
``if TYPE_CHECKING:`` do not run). A missing one would leave a stale output after a code change; an extra one
would rerun a stage for nothing."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import grimp
import pytest
import yaml

from tests.conftest import REPO

SRC = REPO / "src"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("dvsa", exclude_type_checking_imports=True, cache_dir=None)


def _imported(path: Path) -> set[str]:
    """The dvsa modules a script imports (at any depth of the file: lazy imports run too)."""
    modules = graph().modules
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "dvsa"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dvsa":
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
    return out


def _file(module: str) -> str:
    path = SRC / Path(*module.split("."))
    return str((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(REPO))


def source_files(stage: dict) -> set[str]:
    """The src/dvsa files that the stage's command runs."""
    script = re.search(r"stages/\w+\.py", stage["cmd"])
    assert script, stage["cmd"]
    roots = _imported(REPO / script.group(0))
    if "-m dvsa.launch" in stage["cmd"]:
        roots.add("dvsa.launch")
    modules = set(roots)
    for m in roots:
        modules |= graph().find_upstream_modules(m)
    for m in list(modules):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        parts = m.split(".")
        modules |= {".".join(parts[:k]) for k in range(1, len(parts))}
    return {_file(m) for m in modules}


def listed_files(stage: dict) -> set[str]:
    """The src/dvsa files among the stage's deps (a folder stands for every .py file in it)."""
    out: set[str] = set()
    for dep in stage.get("deps", []):
        if not dep.startswith("src/"):
            continue
        path = REPO / dep
        out |= {str(p.relative_to(REPO)) for p in path.rglob("*.py")} if path.is_dir() else {dep}
    return out


@pytest.mark.parametrize("name", list(STAGES))
def test_deps_are_exactly_the_code_the_stage_runs(name: str) -> None:
    runs, listed = source_files(STAGES[name]), listed_files(STAGES[name])
    assert not runs - listed, f"dvc.yaml stage {name}: add to deps: {sorted(runs - listed)}"
    assert not listed - runs, f"dvc.yaml stage {name}: not imported by its code: {sorted(listed - runs)}"
