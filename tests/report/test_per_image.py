from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvsa.caption.evaluation import CaptionEvaluation
from dvsa.io import write_csv
from dvsa.metrics.coco import coco_scores
from dvsa.report.per_image import caption_table, per_image_scores

REFS = {
    1: ["A red circle on the left.", "A red circle."],
    2: ["Two blue squares!", "Two squares that are blue."],
    3: ["A green triangle above a small circle.", "A triangle and a circle."],
}
CANDS = {1: "a red circle on the left", 2: "an image", 3: "a green triangle and a circle"}


def test_per_image_cider_averages_to_the_corpus_score() -> None:
    per = per_image_scores(REFS, CANDS)
    corpus = coco_scores(REFS, CANDS, meteor=False)
    assert np.mean([s["CIDEr"] for s in per.values()]) == pytest.approx(corpus["CIDEr"], abs=1e-9)
    assert per[1]["Bleu_4"] == pytest.approx(1.0, abs=1e-6) and per[2]["Bleu_4"] < 1e-3


def test_caption_table_round_trips_through_csv(tmp_path: Path) -> None:
    ev = CaptionEvaluation(
        rows=np.array([2, 0]),
        image_ids=[12, 10],
        captions=[CANDS[1], CANDS[2]],
        baseline=["a circle", "two squares"],
        references=[REFS[1], REFS[2]],
        metrics={},
    )
    dataset = {"images": [{"filename": "a.png", "filepath": "val"}, {"filename": "b.png"}, {"filename": "c.png"}]}
    write_csv(tmp_path / "t.csv", caption_table(ev, dataset))
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns) == ["image_id", "file", "caption", "baseline", "Bleu_4", "CIDEr"]
    assert table["image_id"].tolist() == [12, 10] and table["file"].tolist() == ["c.png", "val/a.png"]
    assert table["CIDEr"][0] > table["CIDEr"][1]
