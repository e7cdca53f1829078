"""The train_captioner and evaluate_captioner stage scripts on the toy world, run from a scratch folder."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest
import yaml

from dvsa.metrics import coco
from dvsa.stage import run_stage
from tests.caption.toy import write_toy
from tests.conftest import REPO

CAPTIONER = {"rnn_size": 24, "input_encoding_size": 16, "batch_size": 8, "seq_per_img": 3, "max_iters": 60,
             "val_every": 20, "learning_rate": 0.01}


def stage(name: str) -> Any:
    return runpy.run_path(str(REPO / "stages" / f"{name}.py"), run_name="stage")["main"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("work")
    write_toy(root, n_train=60, n_test=16, noise=0.6)
    params = {"captioner": CAPTIONER, "evaluate": {"captioning": {"report_images": 5, "batch_size": 7}}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def test_train_then_evaluate(workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(coco, "java_available", lambda: False)  # fast; the Java scorers are tested in test_coco
    stage("train_captioner")()
    assert (workdir / "models" / "captioner.pt").is_file()
    assert not (workdir / "models" / "captioner.resume.pt").exists()
    stage("evaluate_captioner")()
    captions = json.loads((workdir / "data" / "eval" / "captions.json").read_text())
    assert [c["image_id"] for c in captions] == list(range(100 + 72, 100 + 88))  # the 16 test images
    assert json.loads((workdir / "data" / "eval" / "captions_coco.json").read_text()) == captions
    per_image = (workdir / "data" / "eval" / "captions_per_image.csv").read_text().splitlines()
    assert per_image[0] == "image_id,file,caption,baseline,Bleu_4,CIDEr" and len(per_image) == 17
    summary = json.loads((workdir / "metrics" / "captioning.json").read_text())  # the headline figures
    metrics = json.loads((workdir / "metrics" / "details" / "captioning.json").read_text())
    # the toy world has no true objects: no truth figures, so no share of true captions
    assert summary == {"CIDEr": metrics["model"]["CIDEr"], "Bleu_4": metrics["model"]["Bleu_4"]}
    assert metrics["n_images"] == 16
    for system in ("model", "nn_baseline"):
        assert metrics[system]["SPICE"] == "unavailable"
        for m in ("Bleu_1", "Bleu_4", "ROUGE_L", "CIDEr"):
            assert isinstance(metrics[system][m], float)
        assert metrics["margin"]["CIDEr"] == pytest.approx(metrics["model"]["CIDEr"] - metrics["nn_baseline"]["CIDEr"])
    assert 1.0 < metrics["model"]["perplexity"] < 3.0  # the toy captions are nearly determined by the class
    assert metrics["model"]["CIDEr"] > 1.0
    page = (workdir / "reports" / "index.html").read_text()
    assert page.count('class="item"') == 5 and captions[0]["caption"] in page
    out = capsys.readouterr().out
    assert "CIDEr" in out and "wrote data/eval/captions.json" in out
    assert metrics["model"]["METEOR"] == "unavailable" and metrics["unavailable"]["METEOR"] == "java not found"


def test_exploding_loss_is_one_line_and_leaves_no_model(tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for d in ("data",):
        (tmp_path / d).symlink_to(workdir / d)
    params = {"captioner": {**CAPTIONER, "learning_rate": 100.0, "grad_clip": 100.0}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        run_stage(stage("train_captioner"))
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: the loss exploded at iteration") and "Traceback" not in "".join(err)
    assert not (tmp_path / "models" / "captioner.pt").exists()


def test_bad_params_name_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"captioner": {"rnn_type": "gru"}}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match="captioner.rnn_type"):
        stage("train_captioner")()
