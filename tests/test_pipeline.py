"""End to end: the real `dvc repro` of the whole DAG on a tiny configuration, in a copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow

TINY: dict[str, Any] = {
    "dataset": {"shapes": {"n_train": 60, "n_val": 16, "n_test": 16, "image_size": 64}},
    "preprocess": {"word_count_threshold": 2},
    "regions": {"net": {"input_size": 64, "fc6_dim": 64, "fc7_dim": 256}, "train": {"epochs": 1, "batch_size": 8},
                "batch_size": 16},
    "alignment": {"hidden_size": 32, "word_embedding_size": 16, "batch_size": 20, "epochs": 2},
    "captioner": {"rnn_size": 32, "input_encoding_size": 32, "batch_size": 8, "max_iters": 12, "val_every": 6,
                  "val_images": 8},
    "evaluate": {"alignment": {"n_figures": 1, "batch_size": 8}, "captioning": {"report_images": 4, "batch_size": 8}},
}

# One param per stage: changing it must make exactly that stage out of date (its descendants follow).
PARAM_OF_STAGE = {
    "dataset": ("dataset", "seed", 7),
    "preprocess": ("preprocess", "word_count_threshold", 3),
    "region_cnn": ("regions", "train", {"epochs": 2, "batch_size": 8}),
    "regions": ("regions", "detect", {"nms_iou": 0.6}),
    "train_alignment": ("alignment", "epochs", 3),
    "evaluate_alignment": ("evaluate", "alignment", {"n_figures": 1, "batch_size": 8, "beta": 2.0}),
    "train_captioner": ("captioner", "max_iters", 13),
    "evaluate_captioner": ("evaluate", "captioning", {"report_images": 4, "batch_size": 8, "beam_size": 2}),
}

DESCENDANTS = {
    "dataset": {"preprocess", "region_cnn", "regions", "train_alignment", "evaluate_alignment", "train_captioner",
                "evaluate_captioner"},
    "preprocess": {"train_alignment", "evaluate_alignment", "train_captioner", "evaluate_captioner"},
    "region_cnn": {"regions", "train_alignment", "evaluate_alignment", "train_captioner", "evaluate_captioner"},
    "regions": {"train_alignment", "evaluate_alignment", "train_captioner", "evaluate_captioner"},
    "train_alignment": {"evaluate_alignment", "evaluate_captioner"},
    "evaluate_alignment": {"evaluate_captioner"},
    "train_captioner": {"evaluate_captioner"},
    "evaluate_captioner": set(),
}


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(cwd / "src"), DVC_NO_ANALYTICS="1")
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=1500)
    if check:
        assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(base.get(k) or {}, v) if isinstance(v, dict) else v
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
    git = ["git", "-c", "user.name=dvsa-test", "-c", "user.email=test@dvsa.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "tiny"], cwd=root, check=True)  # dvclive needs a commit
    dvc(root, "repro")
    return root


def out_of_date(root: Path) -> set[str]:
    return set(json.loads(dvc(root, "status", "--json").stdout or "{}"))


def test_repro_produces_every_output(project: Path) -> None:
    for path in ("data/dataset/dataset.json", "data/prepro/labels.h5", "models/region_cnn.pt", "data/regions/regions.h5",
                 "models/alignment.pt", "models/captioner.pt", "metrics/alignment.json", "metrics/captioning.json",
                 "data/eval/captions.json", "data/eval/snippets.json", "reports/index.html"):
        assert (project / path).is_file(), path
    metrics = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    assert metrics, "dvc metrics show found no metrics"


def test_second_repro_is_a_no_op(project: Path) -> None:
    assert out_of_date(project) == set()
    assert "Running stage" not in dvc(project, "repro").stdout


def test_dag_is_as_designed(project: Path) -> None:
    dag = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert set(dag) == set(DESCENDANTS)


@pytest.mark.parametrize("stage", list(PARAM_OF_STAGE))
def test_param_change_makes_only_its_stage_out_of_date(project: Path, stage: str) -> None:
    section, key, value = PARAM_OF_STAGE[stage]
    original = (project / "params.yaml").read_text()
    try:
        params = yaml.safe_load(original)
        params[section][key] = merge(params[section][key], value) if isinstance(value, dict) else value
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert out_of_date(project) == {stage}
    finally:
        (project / "params.yaml").write_text(original)


@pytest.mark.parametrize(
    ("module", "stages"),
    [
        ("src/dvsa/caption/decode.py", {"train_captioner", "evaluate_captioner"}),
        ("src/dvsa/align/snippets.py", {"evaluate_alignment"}),
        ("src/dvsa/data/prepro.py", {"preprocess"}),
    ],
)
def test_module_edit_reruns_only_the_stages_that_import_it(project: Path, module: str, stages: set[str]) -> None:
    path = project / module
    original = path.read_text()
    try:
        path.write_text(original + "\n")
        assert out_of_date(project) == stages
    finally:
        path.write_text(original)
