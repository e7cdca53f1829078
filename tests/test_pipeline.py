"""End to end: the real `dvc repro` of the whole DAG on a tiny configuration, in a copy of the repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.project import dvc, merge, write_params

pytestmark = pytest.mark.slow

# One param per stage: changing it must make exactly that stage out of date (its descendants follow).
PARAM_OF_STAGE = {
    "dataset": ("dataset", "seed", 7),
    "preprocess": ("preprocess", "word_count_threshold", 3),
    "region_cnn": ("regions", "shapes", {"train": {"epochs": 2, "batch_size": 8}}),
    "regions": ("regions", "detect", {"nms_iou": 0.6}),
    "train_alignment": ("alignment", "epochs", 3),
    "evaluate_alignment": ("evaluate", "alignment", {"n_figures": 1, "batch_size": 8, "beta": 2.0}),
    "train_captioner": ("captioner", "max_iters", 13),
    "evaluate_captioner": ("evaluate", "captioning", {"report_images": 4, "batch_size": 8, "beam_size": 2}),
    "region_snippets": ("region_snippets", "max_words", 5),
    "train_region_captioner": ("region_captioner", "max_iters", 13),
    "evaluate_region_captioner": ("evaluate", "region_captioning", {"n_figures": 2}),
}
REGION_STAGES = {"region_snippets", "train_region_captioner", "evaluate_region_captioner"}

DESCENDANTS = {
    "dataset": {"preprocess", "region_cnn", "regions", "train_alignment", "evaluate_alignment", "train_captioner",
                "evaluate_captioner", *REGION_STAGES},
    "preprocess": {"train_alignment", "evaluate_alignment", "train_captioner", "evaluate_captioner", *REGION_STAGES},
    "region_cnn": {"regions", "train_alignment", "evaluate_alignment", "train_captioner", "evaluate_captioner",
                   *REGION_STAGES},
    "regions": {"train_alignment", "evaluate_alignment", "train_captioner", "evaluate_captioner", *REGION_STAGES},
    "train_alignment": {"evaluate_alignment", "evaluate_captioner", *REGION_STAGES},
    "evaluate_alignment": {"evaluate_captioner"},
    "train_captioner": {"evaluate_captioner", "evaluate_region_captioner"},
    "evaluate_captioner": set(),
    "region_snippets": {"train_region_captioner", "evaluate_region_captioner"},
    "train_region_captioner": {"evaluate_region_captioner"},
    "evaluate_region_captioner": set(),
}


@pytest.fixture(scope="module")
def project(tiny_pipeline: Path) -> Path:
    return tiny_pipeline


def out_of_date(root: Path) -> set[str]:
    return set(json.loads(dvc(root, "status", "--json").stdout or "{}"))


def test_repro_produces_every_output(project: Path) -> None:
    for path in ("data/dataset/dataset.json", "data/prepro/labels.h5", "models/region_cnn.pt", "data/regions/regions.h5",
                 "models/alignment.pt", "models/captioner.pt", "metrics/alignment.json", "metrics/captioning.json",
                 "data/eval/captions.json", "data/eval/snippets.json", "data/eval/ranking_per_image.csv",
                 "data/eval/ranking_per_sentence.csv", "reports/index.html",
                 "data/region_snippets/labels.h5", "data/region_snippets/index.json", "models/region_captioner.pt",
                 "metrics/region_captioning.json", "data/eval/region_descriptions.json"):
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


@pytest.mark.parametrize("ignored", [{"vgg16": {"min_size": 480}}, {"alexnet": {"encoder_weights": "/x.pth"}}])
def test_a_param_the_backbone_ignores_reruns_nothing(project: Path, ignored: dict) -> None:
    """With backbone shapes, region_cnn reads regions.shapes only (dvc.yaml: regions.${regions.backbone})."""
    original = (project / "params.yaml").read_text()
    try:
        params = yaml.safe_load(original)
        assert params["regions"]["backbone"] == "shapes"
        params["regions"] = merge(params["regions"], ignored)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert out_of_date(project) == set()
        params["regions"]["backbone"] = "vgg16"
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert out_of_date(project) == {"region_cnn"}
    finally:
        (project / "params.yaml").write_text(original)


@pytest.mark.parametrize(
    ("module", "stages"),
    [
        ("src/dvsa/caption/beam.py", {"train_captioner", "evaluate_captioner", "train_region_captioner",
                                        "evaluate_region_captioner"}),
        ("src/dvsa/align/snippets.py", {"evaluate_alignment", "region_snippets"}),
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


def _keys(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in _keys(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


def test_no_metric_or_log_holds_a_timing(project: Path) -> None:
    """A timing in a tracked file changes it on every run, with every metric the same."""
    timing = re.compile(r"second|time|elapsed|duration", re.IGNORECASE)
    names = [f"{p}:{k}" for p in [*(project / "metrics").rglob("*.json"), *(project / "logs").rglob("*.json")]
             for k in _keys(json.loads(p.read_text()))]
    names += [str(p) for p in (project / "logs").rglob("*.tsv")]
    assert not [n for n in names if timing.search(n.split("project", 1)[-1])]


def test_a_forced_rerun_changes_no_tracked_file(project: Path) -> None:
    """What `make run` from a fresh clone does to a committed project: the same bytes, a clean `git status`."""
    git = ["git", "-c", "user.name=dvsa-test", "-c", "user.email=test@dvsa.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "outputs"], cwd=project, check=True)
    dvc(project, "repro", "-f", "-s", "preprocess", "region_cnn", "regions", "train_alignment", "evaluate_alignment",
        "train_captioner", "evaluate_captioner")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True)
    assert status.stdout == ""
    assert out_of_date(project) == set()


DISTRIBUTED_STAGES = {"regions", "train_alignment", "train_captioner"}


def test_two_processes_run_the_pipeline_with_the_metrics_of_one(project: Path, tmp_path: Path) -> None:
    """`compute.nproc: 2` (torchrun, gloo): exactly the stages it launches rerun (their descendants follow
    only where an output changed), regions.h5 comes out the same file, and the models the same up to float
    rounding, so the metrics are those of one process."""
    root = tmp_path / "project"
    shutil.copytree(project, root, symlinks=True)
    one = {name: json.loads((root / f"metrics/{name}.json").read_text()) for name in ("alignment", "captioning")}
    regions_lock = [o for o in yaml.safe_load((root / "dvc.lock").read_text())["stages"]["regions"]["outs"]]
    write_params(root, {"compute": {"nproc": 2}})
    assert out_of_date(root) == DISTRIBUTED_STAGES
    dvc(root, "repro")
    assert yaml.safe_load((root / "dvc.lock").read_text())["stages"]["regions"]["outs"] == regions_lock
    for name, figures in one.items():
        two = json.loads((root / f"metrics/{name}.json").read_text())
        assert _keys(two) == _keys(figures)
        for key in _keys(figures):
            a, b = _get(two, key), _get(figures, key)
            assert a == (pytest.approx(b, abs=1e-6) if isinstance(b, float) else b), (name, key)
    assert out_of_date(root) == set()


def _get(node: object, dotted: str) -> object:
    for part in dotted.split("."):
        node = node[part]  # type: ignore[index]
    return node
