from __future__ import annotations

import pytest

from dvsa.metrics import coco
from dvsa.metrics.coco import coco_scores, score_systems

REFS = {
    1: ["A red circle on the left.", "A red circle."],
    2: ["Two blue squares!", "Two squares that are blue."],
    3: ["A green triangle above a small circle.", "A triangle and a circle."],
}
SAME = {k: v[0] for k, v in REFS.items()}
OTHER = {1: "a large purple hexagon", 2: "an image", 3: "dogs run in the park"}


@pytest.mark.slow
@pytest.mark.skipif(not coco.java_available(), reason="java not installed (PTB tokenizer, METEOR)")
def test_identical_captions_score_perfectly_with_java(capfd: pytest.CaptureFixture[str]) -> None:
    scores = coco_scores(REFS, SAME)
    for m in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L"):
        assert scores[m] == pytest.approx(1.0, abs=1e-6), m
    assert scores["CIDEr"] > 1.0
    assert scores["SPICE"] == "unavailable" and "SPICE" in scores["unavailable"]
    assert "METEOR" not in scores["unavailable"]
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # the scorers' console noise is captured


def test_unrelated_captions_score_low_and_partial_ones_in_between() -> None:
    both = score_systems(REFS, {"same": SAME, "other": OTHER, "partial": {1: "a red square", 2: "two blue squares", 3: "a dog"}}, meteor=False, ptb=False)
    for m in ("Bleu_1", "ROUGE_L", "CIDEr"):
        assert both["same"][m] > both["partial"][m] > both["other"][m], m
    assert both["other"]["Bleu_4"] < 1e-3
    assert both["other"]["CIDEr"] < 0.1 * both["same"]["CIDEr"]
    assert both["same"]["METEOR"] == "unavailable"


def test_missing_java_means_meteor_unavailable_with_one_warning(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(coco, "java_available", lambda: False)
    scores = coco_scores(REFS, SAME)
    assert scores["METEOR"] == "unavailable" and scores["unavailable"]["METEOR"] == "java not found"
    assert scores["Bleu_1"] == pytest.approx(1.0, abs=1e-6)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "java not found" in err


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="no references"):
        coco_scores({1: ["a"]}, {1: "a", 2: "b"}, meteor=False, ptb=False)
    with pytest.raises(ValueError, match="other images"):
        score_systems(REFS, {"a": SAME, "b": {1: "x"}}, meteor=False, ptb=False)
