"""End to end: the real `dvc repro` on a tiny configuration, in a copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow

TINY = {
    "dataset": {"shapes": {"n_train": 60, "n_val": 16, "n_test": 16, "image_size": 96}},
    "preprocess": {"word_count_threshold": 2},
}


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(cwd / "src"), DVC_NO_ANALYTICS="1")
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=1500)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def merge(base: dict, override: dict) -> dict:  # type: ignore[type-arg]
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        if name.startswith(("data/", "models/", "metrics/", "logs/", "reports/", "docs/")) or name == "dvc.lock":
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(merge(params, TINY), sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "repro")
    return root


def stages_to_run(root: Path) -> set[str]:
    out = dvc(root, "repro", "--dry").stdout
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


def test_repro_produces_every_output(project: Path) -> None:
    assert (project / "data/dataset/dataset.json").is_file()
    assert (project / "data/prepro/labels.h5").is_file()
    assert (project / "metrics/preprocess.json").is_file()


def test_second_repro_is_a_no_op(project: Path) -> None:
    assert stages_to_run(project) == set()


def test_param_change_reruns_only_its_stage(project: Path) -> None:
    original = (project / "params.yaml").read_text()
    try:
        params = yaml.safe_load(original)
        params["preprocess"]["word_count_threshold"] = 3
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert "preprocess" in stages_to_run(project)
        assert "dataset" not in stages_to_run(project)
    finally:
        (project / "params.yaml").write_text(original)
