"""dvsa.metric_files: the headline figures experiments compare (DVC metrics) apart from the whole record
(plain outputs). tests/test_metric_views.py renders DVC's views of them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dvsa.metric_files import headline, write_details, write_metrics
from tests.conftest import REPO

RECORD = {"split": "test", "annotation": {"r1": 1.0, "r5": 2.0}, "chance": {"r1": 0.5}, "n": 3}


def test_headline_renames_nests_by_the_shown_names_and_leaves_out_absent_keys() -> None:
    figures = {"i2t.r1": "annotation.r1", "count": "n", "grounding": "grounding.overall", "deep": "annotation.r1.x"}
    assert headline(RECORD, figures) == {"i2t": {"r1": 1.0}, "count": 3}


def test_write_metrics_writes_both_views(tmp_path: Path) -> None:
    write_metrics(tmp_path / "m/a.json", tmp_path / "m/details/a.json", RECORD, {"r5": "annotation.r5"})
    assert json.loads((tmp_path / "m/a.json").read_text()) == {"r5": 2.0}
    assert json.loads((tmp_path / "m/details/a.json").read_text()) == RECORD
    write_details(tmp_path / "m/details/b.json", RECORD)
    assert json.loads((tmp_path / "m/details/b.json").read_text()) == RECORD


def _declared(kind: str) -> list[str]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return [next(iter(e)) if isinstance(e, dict) else e for st in stages.values() for e in st.get(kind, [])]


def test_only_headline_files_are_metrics_and_every_record_is_a_plain_output() -> None:
    metrics, outs = _declared("metrics"), _declared("outs")
    assert sorted(metrics) == [f"metrics/{s}.json" for s in ("alignment", "captioning", "region_captioning", "regions")]
    for stage in ("alignment", "captioning", "region_captioning", "regions", "preprocess", "region_snippets"):
        assert f"metrics/details/{stage}.json" in outs
    for trainer in ("region_cnn", "alignment", "captioner", "region_captioner"):  # dvclive's last-step values
        assert f"logs/{trainer}/metrics.json" in outs
