from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsa.caption.checkpoint import load_captioner, load_checkpoint
from dvsa.caption.config import CaptionerParams
from dvsa.caption.train import feature_stats, learning_rate, train_captioner
from dvsa.data.labels import read_labels
from dvsa.errors import TrainingError
from dvsa.regions.store import RegionStore
from tests.caption.toy import write_toy

TINY = CaptionerParams(
    rnn_size=24, input_encoding_size=16, batch_size=8, seq_per_img=3, max_iters=30, val_every=10, learning_rate=1e-2
)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_toy(tmp_path_factory.mktemp("toy"))


def run(toy: dict[str, Path], out: Path, params: CaptionerParams, **kw: object) -> dict:  # type: ignore[type-arg]
    labels = read_labels(toy["labels"], toy["vocab"])
    with RegionStore(toy["regions"]) as store:
        return train_captioner(
            params, labels, store, out / "captioner.pt", out / "captioner.resume.pt", out / "logs", progress=False, **kw
        )


def test_learning_rate_decay_formula() -> None:
    p = CaptionerParams(learning_rate=4e-4, learning_rate_decay_start=100, learning_rate_decay_every=50)
    assert learning_rate(p, 0) == 4e-4
    assert learning_rate(p, 100) == 4e-4
    assert learning_rate(p, 150) == pytest.approx(2e-4)
    assert learning_rate(p, 200) == pytest.approx(1e-4)
    assert learning_rate(p, 125) == pytest.approx(4e-4 * 2**-0.5)
    assert learning_rate(replace(p, learning_rate_decay_start=-1), 10_000) == 4e-4


@pytest.mark.parametrize("rnn_type", ["lstm", "rnn"])
def test_training_learns_the_toy_world_and_keeps_the_best_val_cider(toy: dict[str, Path], tmp_path: Path, rnn_type: str) -> None:
    summary = run(toy, tmp_path, replace(TINY, max_iters=60, val_every=20, rnn_type=rnn_type))
    assert summary["val"]["val/CIDEr"] > 2.0  # captions name the right colour and shape
    model, vocab, data = load_captioner(tmp_path / "captioner.pt")
    vals = [r for r in data["history"] if "val/CIDEr" in r]
    assert [r["step"] for r in vals] == [20, 40, 60]
    best = max(vals, key=lambda r: r["val/CIDEr"])
    assert data["iteration"] == best["step"] and data["val"]["val/CIDEr"] == best["val/CIDEr"]
    assert set(vocab.values()) >= {"red", "blue", "circle", "square"}
    assert not (tmp_path / "captioner.resume.pt").exists()
    assert (tmp_path / "logs" / "plots" / "metrics" / "train" / "loss.tsv").is_file()


def test_interrupted_training_resumes_exactly(toy: dict[str, Path], tmp_path: Path) -> None:
    params = replace(TINY, drop_prob_lm=0.5)
    whole = run(toy, tmp_path / "whole", params)

    def interrupt(iteration: int) -> None:
        if iteration == 17:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run(toy, tmp_path / "split", params, on_iteration=interrupt)
    assert not (tmp_path / "split" / "captioner.pt").exists()
    state = load_checkpoint(tmp_path / "split" / "captioner.resume.pt")
    assert state["iteration"] == 17
    resumed = run(toy, tmp_path / "split", params)
    assert resumed["resumed"] and not whole["resumed"]
    a = load_checkpoint(tmp_path / "whole" / "captioner.pt")
    b = load_checkpoint(tmp_path / "split" / "captioner.pt")
    assert a["history"] == b["history"]
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


def test_resume_file_from_other_params_is_ignored(toy: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupt(iteration: int) -> None:
        if iteration == 5:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run(toy, tmp_path, replace(TINY, max_iters=10), on_iteration=interrupt)
    summary = run(toy, tmp_path, replace(TINY, max_iters=10, learning_rate=5e-3))
    assert not summary["resumed"]
    assert "starting afresh" in capsys.readouterr().out


def test_exploding_loss_stops_with_a_training_error_and_no_model(toy: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"loss exploded at iteration \d+") as e:
        run(toy, tmp_path, replace(TINY, learning_rate=100.0, grad_clip=100.0))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "captioner.pt").exists()
    assert not (tmp_path / "captioner.resume.pt").exists()


def test_feature_stats_are_the_train_mean_and_std(toy: dict[str, Path]) -> None:
    labels = read_labels(toy["labels"], toy["vocab"])
    rows = labels.split_indices("train")
    with RegionStore(toy["regions"]) as store:
        mean, std = feature_stats(store, rows, chunk=7)
        f = store.feats(rows, region=0).astype(np.float64)
    assert np.allclose(mean.numpy(), f.mean(0), atol=1e-5)
    assert np.allclose(std.numpy(), np.sqrt(f.var(0) + 1e-4), atol=1e-5)


@pytest.mark.parametrize("feat_norm", ["standardize", "none"])
def test_the_checkpoint_carries_the_feature_standardisation(toy: dict[str, Path], tmp_path: Path, feat_norm: str) -> None:
    run(toy, tmp_path, replace(TINY, max_iters=2, val_every=2, feat_norm=feat_norm))
    model, _, _ = load_captioner(tmp_path / "captioner.pt")
    assert bool((model.feat_mean != 0).any()) == (feat_norm == "standardize")
