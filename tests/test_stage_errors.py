"""Stage scripts on bad input: one line on stderr naming the file/key, exit code 1, no output left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_karpathy


def run_stage(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{name}.py")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def karpathy_params(json_path: Path, images: Path, extra: str = "") -> str:
    return f"dataset:\n  source: karpathy\n  karpathy:\n    json: {json_path}\n    images: {images}\n{extra}"


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_karpathy_dataset_then_preprocess(tmp_path: Path) -> None:
    json_path, images = write_karpathy(tmp_path / "src")
    (tmp_path / "params.yaml").write_text(karpathy_params(json_path, images))
    assert run_stage("dataset", tmp_path).returncode == 0
    data = json.loads((tmp_path / "data/dataset/dataset.json").read_text())
    assert len(data["images"]) == 6 and data["image_root"] == str(images)
    result = run_stage("preprocess", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "UNK rate" in result.stdout
    assert (tmp_path / "data/prepro/labels.h5").is_file()
    details = json.loads((tmp_path / "metrics/details/preprocess.json").read_text())
    assert details["n_sentences"] == 30 and {"vocab_size", "unk_rate", "truncated_rate"} <= set(details)
    assert not (tmp_path / "metrics/preprocess.json").exists()  # figures of the data: no DVC metric


@pytest.mark.parametrize(
    ("corrupt", "fragments"),
    [
        (lambda p: p.write_text("{oops"), ["dataset_tiny.json: not valid JSON"]),
        (lambda p: p.write_text(json.dumps({"images": [{"filename": "0.png", "filepath": "sub", "split": "train", "sentences": []}]})),
         ["dataset_tiny.json: images[0]: no sentences"]),
        (lambda p: p.write_text(p.read_text().replace('"split": "val"', '"split": "dev"')), ["unknown split 'dev'"]),
        (lambda p: p.write_text(p.read_text().replace('"filepath": "sub", "filename": "2.png"', '"filepath": "../..", "filename": "2.png"')),
         ["escapes the images folder"]),
    ],
)
def test_bad_dataset_json(tmp_path: Path, corrupt, fragments: list[str]) -> None:  # type: ignore[no-untyped-def]
    json_path, images = write_karpathy(tmp_path / "src")
    corrupt(json_path)
    (tmp_path / "params.yaml").write_text(karpathy_params(json_path, images))
    assert_one_line_error(run_stage("dataset", tmp_path), *fragments)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*"))


@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        ("dataset:\n  shapes:\n    n_train: -5\n", ["params.yaml: dataset.shapes.n_train: must be >= 1, got -5"]),
        ("dataset:\n  shapes:\n    n_trian: 5\n", ["params.yaml: dataset.shapes.n_trian: unknown key"]),
        ("dataset:\n  seed: abc\n", ["params.yaml: dataset.seed: expected an integer, got 'abc'"]),
        ("dataset:\n  source: flickr\n", ["params.yaml: dataset.source: expected one of 'shapes', 'karpathy', 'coco'"]),
        ("dataset:\n  source: coco\n", ["dataset.coco.annotations and dataset.coco.images must be set"]),
        ("dataset:\n  coco:\n    annotations: captions_val2014.json\n",
         ["params.yaml: dataset.coco.annotations: expected a list"]),
        ("dataset:\n  source: karpathy\n", ["dataset.karpathy.json and dataset.karpathy.images must be set"]),
    ],
)
def test_bad_dataset_params(tmp_path: Path, params: str, fragments: list[str]) -> None:
    (tmp_path / "params.yaml").write_text(params)
    assert_one_line_error(run_stage("dataset", tmp_path), *fragments)
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*"))


def test_bad_preprocess_params_and_missing_input(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("preprocess:\n  max_length: 0\n")
    assert_one_line_error(run_stage("preprocess", tmp_path), "preprocess.max_length: must be >= 1, got 0")
    (tmp_path / "params.yaml").write_text("preprocess:\n  word_count_threshold: 2\n")
    assert_one_line_error(run_stage("preprocess", tmp_path), "data/dataset/dataset.json: file not found")
    assert not (tmp_path / "data" / "prepro").exists()
