from __future__ import annotations

import json
from pathlib import Path

import pytest

from dvsa.metrics import coco
from dvsa.metrics.coco_results import cocoeval_scores, write_references, write_results

REFS = {
    1: ["A red circle on the left.", "A red circle."],
    2: ["Two blue squares!", "Two squares that are blue."],
    3: ["A green triangle above a small circle.", "A triangle and a circle."],
}
CANDS = {1: "a red square on the left", 2: "two blue squares", 3: "a green triangle and a circle"}


def test_results_and_references_files_load_with_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    write_references(tmp_path / "refs.json", REFS)
    write_results(tmp_path / "res.json", CANDS)
    assert json.loads((tmp_path / "res.json").read_text())[1] == {"image_id": 2, "caption": "two blue squares"}
    gts = COCO(str(tmp_path / "refs.json"))
    res = gts.loadRes(str(tmp_path / "res.json"))
    assert sorted(gts.getImgIds()) == [1, 2, 3]
    assert [a["caption"] for a in gts.imgToAnns[2]] == REFS[2]
    assert res.imgToAnns[3][0]["caption"] == CANDS[3]


@pytest.mark.slow
@pytest.mark.skipif(not coco.java_available(), reason="java not installed (COCOEvalCap runs the PTB tokenizer)")
def test_cocoevalcap_agrees_with_direct_scorer_calls() -> None:
    direct = coco.coco_scores(REFS, CANDS)
    standard = cocoeval_scores(REFS, CANDS)
    for m in coco.METRICS:
        if m == "SPICE":
            assert direct[m] == standard[m] == "unavailable"
        else:
            assert standard[m] == pytest.approx(direct[m], abs=1e-9), m
