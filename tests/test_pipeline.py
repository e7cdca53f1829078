"""End to end: the real `dvc repro` of the whole DAG on a tiny configuration, in a copy of the repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.project import TINY, copy_project, dvc, merge

pytestmark = pytest.mark.slow

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


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("project"), TINY)
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
