"""DVC's views of the metrics fit a 160-column terminal with every headline figure in full (issue 21):
`dvc exp show --only-changed`, `dvc metrics show` and `dvc metrics diff`, rendered at COLUMNS=160.

They are drawn in a git + DVC repository made in tmp_path from params.yaml and the real dvc.yaml's stages
(their commands, params and `metrics:` declarations; not the deps and outs, which `dvc exp save` would need
built). Each declared metrics file is written by its stage's headline mapping (HEADLINE) and
`dvsa.metric_files.write_metrics` from the committed record of the real schema (metrics/details/); a declared
file that no HEADLINE writes (a training log declared as a metric) is copied as committed. A baseline commit
dated in the past ("Created" then shows a date, its widest form) is followed by an experiment saved under a
name as long as DVC's own (adjective-noun) that changes a param and every figure (worst case: every headline
column is shown).
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dvsa.metric_files import write_metrics
from tests.conftest import REPO

COLUMNS = 160
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
BASELINE_DATE = "2025-01-02T12:00:00"


def _dvc(root: Path, *args: str) -> str:
    env = dict(os.environ, COLUMNS=str(COLUMNS), DVC_NO_ANALYTICS="1", **IDENTITY)
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"dvc {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(["git", *args], cwd=root, env=dict(os.environ, **IDENTITY, **(env or {})), check=True,
                   capture_output=True)


def _writers(stages: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each metrics file dvc.yaml declares -> its stage's DETAILS and HEADLINE ({}: no HEADLINE writes it)."""
    out: dict[str, dict[str, Any]] = {}
    for stage in stages.values():
        script = re.search(r"stages/\w+\.py", stage["cmd"])
        assert script, stage["cmd"]
        for entry in stage.get("metrics", []):
            path = next(iter(entry)) if isinstance(entry, dict) else entry
            names = runpy.run_path(str(REPO / script.group(0)), run_name="stage")
            writes = "HEADLINE" in names and str(names["METRICS"]) == path
            out[path] = {"details": str(names["DETAILS"]), "headline": names["HEADLINE"]} if writes else {}
    return out


def _scaled(node: Any, factor: float) -> Any:
    if isinstance(node, dict):
        return {k: _scaled(v, factor) for k, v in node.items()}
    return node * factor if isinstance(node, float) else node


def _write_metrics(root: Path, writers: dict[str, dict[str, Any]], factor: float) -> None:
    for path, writer in writers.items():
        if writer:
            record = _scaled(json.loads((REPO / writer["details"]).read_text()), factor)
            write_metrics(root / path, root / writer["details"], record, writer["headline"])
        else:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(json.dumps(_scaled(json.loads((REPO / path).read_text()), factor)))


def _flat(node: dict[str, Any], prefix: str = "") -> list[str]:
    """The names DVC gives the figures of a metrics file (nested keys joined by dots), in the file's order."""
    return [n for k, v in node.items() for n in (_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k])]


def _fits(view: str, text: str) -> None:
    wide = [line for line in text.splitlines() if len(line) > COLUMNS]
    assert text.strip() and not wide, f"{view}: {len(wide)} lines wider than {COLUMNS} columns:\n{text}"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The repository (baseline committed, the experiment's figures in the workspace) and the headline names."""
    root = tmp_path_factory.mktemp("views")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    kept = {name: {k: v for k, v in st.items() if k in ("cmd", "params", "metrics")} for name, st in stages.items()}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": kept}, sort_keys=False))
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    _git(root, "init", "-q", "-b", "main")
    _dvc(root, "init", "-q")
    writers = _writers(stages)
    _write_metrics(root, writers, 1.0)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "baseline", env={"GIT_AUTHOR_DATE": BASELINE_DATE,
                                                       "GIT_COMMITTER_DATE": BASELINE_DATE})
    names = [n for path in writers for n in _flat(json.loads((root / path).read_text()))]
    expected = [n for writer in writers.values() for n in writer.get("headline", [])]
    assert set(expected) <= set(names), f"not in the committed records: {sorted(set(expected) - set(names))}"
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["captioner"]["learning_rate"] /= 2  # a long param name, as a real experiment's
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _write_metrics(root, writers, 0.97)  # every figure changes, to 5 significant digits (the widest cells)
    return root, names


@pytest.mark.slow
def test_metrics_diff_and_show_fit_with_every_headline_figure(repo: tuple[Path, list[str]]) -> None:
    root, names = repo
    diff = _dvc(root, "metrics", "diff")
    _fits("dvc metrics diff", diff)
    assert sorted(line.split()[1] for line in diff.splitlines()[1:]) == sorted(names), diff
    show = _dvc(root, "metrics", "show")
    _fits("dvc metrics show", show)
    assert sorted(show.splitlines()[0].split()[1:]) == sorted(names), show


@pytest.mark.slow
def test_exp_show_only_changed_fits_with_every_headline_figure(repo: tuple[Path, list[str]]) -> None:
    root, names = repo
    _dvc(root, "exp", "save", "-n", "lunar-prom")  # DVC's own names are adjective-noun, 10 characters
    table = _dvc(root, "exp", "show", "--no-pager", "--only-changed")
    _fits("dvc exp show --only-changed", table)
    header = table.splitlines()[1].split()
    assert header[:2] == ["Experiment", "Created"], table
    assert header[2:2 + len(names)] == names, f"a headline column is elided or cut:\n{table}"
    assert "[lunar-prom]" in table and "Jan 02, 2025" in table, table
