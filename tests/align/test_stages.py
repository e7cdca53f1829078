"""The train_alignment and evaluate_alignment stage scripts on the tiny synthetic world."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import REPO

PARAMS = """
alignment:
  hidden_size: 32
  word_embedding_size: 16
  batch_size: 20
  seq_per_img: 3
  epochs: 4
  lr: 0.001
evaluate:
  alignment:
    beta: 0.5
    n_figures: 3
"""


def run(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{name}.py")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def layout(world, tmp_path: Path) -> Path:
    (tmp_path / "data/prepro").mkdir(parents=True)
    (tmp_path / "data/regions").mkdir()
    (tmp_path / "data/dataset").mkdir()
    shutil.copy(world.labels_h5, tmp_path / "data/prepro/labels.h5")
    shutil.copy(world.vocab_json, tmp_path / "data/prepro/vocab.json")
    shutil.copy(world.regions_h5, tmp_path / "data/regions/regions.h5")
    shutil.copy(world.dataset_json, tmp_path / "data/dataset/dataset.json")
    (tmp_path / "params.yaml").write_text(PARAMS)
    return tmp_path


@pytest.mark.slow
def test_train_then_evaluate(layout: Path) -> None:
    result = run("train_alignment", layout)
    assert result.returncode == 0, result.stderr
    assert (layout / "models/alignment.pt").is_file() and not (layout / "models/alignment.resume.pt").exists()
    assert len(json.loads((layout / "logs/alignment/history.json").read_text())["val_history"]) == 4  # one per epoch
    result = run("evaluate_alignment", layout)
    assert result.returncode == 0, result.stderr
    assert "(chance in brackets)" in result.stdout
    summary = json.loads((layout / "metrics/alignment.json").read_text())  # the headline figures
    metrics = json.loads((layout / "metrics/details/alignment.json").read_text())
    assert summary == {"i2t": {k: metrics["annotation"][k] for k in ("r1", "r5")},
                       "t2i": {k: metrics["search"][k] for k in ("r1", "r5")},
                       "grounding": metrics["grounding"]["overall"]}
    for d in ("annotation", "search"):
        assert set(metrics[d]) == set(metrics[f"{d}_chance"]) == {"r1", "r5", "r10", "medr"}
        assert metrics[d]["r5"] > metrics[f"{d}_chance"]["r5"]
    assert metrics["n_images"] == 30 and metrics["n_sentences"] == 90
    assert metrics["grounding"]["n_words"] > 0 and metrics["snippets"]["beta"] == 0.5
    snippets = json.loads((layout / "data/eval/snippets.json").read_text())
    assert len(snippets) == 30 and len(snippets[0]["sentences"]) == 3
    for sentence in snippets[0]["sentences"]:
        assert " ".join(seg["words"] for seg in sentence["segments"]) == sentence["sentence"]
        assert all(len(seg["box"]) == 4 for seg in sentence["segments"])
    per_image = pd.read_csv(layout / "data/eval/ranking_per_image.csv")
    per_sentence = pd.read_csv(layout / "data/eval/ranking_per_sentence.csv")
    assert len(per_image) == 30 and len(per_sentence) == 90 and per_image["sentences"].sum() == 90
    for d, ranks in (("annotation", per_image["annotation_rank"]), ("search", per_sentence["search_rank"])):
        for k in (1, 5, 10):
            assert 100 * np.mean(ranks <= k) == pytest.approx(metrics[d][f"r{k}"], abs=1e-9), (d, k)
        assert ranks.median() == metrics[d]["medr"], d
    figures = sorted((layout / "reports/alignment").glob("*.png"))
    assert len(figures) == 3
    with Image.open(figures[0]) as im:
        assert im.width >= 384 and im.height > im.width  # enlarged image + caption strip


def test_errors_are_one_line(layout: Path) -> None:
    result = run("evaluate_alignment", layout)
    assert result.returncode == 1 and "error: models/alignment.pt: file not found" in result.stderr
    (layout / "data/regions/regions.h5").unlink()
    result = run("train_alignment", layout)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: data/regions/regions.h5: file not found" in result.stderr
    (layout / "params.yaml").write_text("alignment:\n  optimizer: rmsprop\n")
    result = run("train_alignment", layout)
    assert result.returncode == 1 and "alignment.optimizer" in result.stderr
