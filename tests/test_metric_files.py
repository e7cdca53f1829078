"""dvsa.metric_files: the figures experiments compare (DVC metrics) apart from the whole record (plain outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dvsa.metric_files import pick, write_metrics
from tests.conftest import REPO

RECORD = {"split": "test", "annotation": {"r1": 1.0, "r5": 2.0}, "chance": {"r1": 0.5}, "n": 3}


def test_pick_keeps_only_the_named_keys_nested() -> None:
    assert pick(RECORD, ["annotation.r1", "n", "grounding.overall"]) == {"annotation": {"r1": 1.0}, "n": 3}


def test_write_metrics_writes_both_views(tmp_path: Path) -> None:
    write_metrics(tmp_path / "m/a.json", tmp_path / "m/details/a.json", RECORD, ["annotation.r5"])
    assert json.loads((tmp_path / "m/a.json").read_text()) == {"annotation": {"r5": 2.0}}
    assert json.loads((tmp_path / "m/details/a.json").read_text()) == RECORD


def _declared(kind: str) -> list[str]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return [next(iter(e)) if isinstance(e, dict) else e for st in stages.values() for e in st.get(kind, [])]


def test_training_logs_are_not_compared_metrics_and_details_are_plain_outputs() -> None:
    metrics = _declared("metrics")
    for log in ("logs/region_cnn/metrics.json", "logs/alignment/metrics.json"):  # dvclive's last-epoch values
        assert log not in metrics and log in _declared("outs")
    outs = _declared("outs")
    for stage in ("preprocess", "alignment"):
        assert f"metrics/{stage}.json" in metrics and f"metrics/details/{stage}.json" in outs
