"""Training on the tiny synthetic world: beats chance by a wide margin; exact resume after an interrupt."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from dvsa.align.checkpoint import load_model
from dvsa.align.config import AlignmentParams, EvaluateAlignmentParams
from dvsa.align.evaluation import evaluate, grounding
from dvsa.align.retrieval import evaluate_split
from dvsa.align.train import RESUME_FORMAT, train_alignment
from dvsa.checkpoint import read
from dvsa.data.labels import read_labels
from dvsa.errors import InputError
from dvsa.regions.store import RegionStore
from dvsa.train.loop import Files

TINY = AlignmentParams(hidden_size=32, word_embedding_size=16, batch_size=20, seq_per_img=3, epochs=8, lr=0.001)


def _quiet(_: str) -> None:
    pass


def files(root: Path) -> Files:
    return Files(root / "alignment.pt", root / "alignment.resume.pt", root / "live")


def fit(labels, store, p: AlignmentParams, root: Path, **kw):  # noqa: ANN001, ANN201
    """train_alignment into `root`, quietly: (model, loop state, resumed)."""
    return train_alignment(labels, store, p, files(root), progress=False, **{"log": _quiet, **kw})


def test_tiny_end_to_end_beats_chance(world, tmp_path: Path) -> None:
    labels = read_labels(world.labels_h5, world.vocab_json)
    with RegionStore(world.regions_h5) as store:
        _, state, _ = fit(labels, store, TINY, tmp_path)
        model, params, vocab = load_model(tmp_path / "alignment.pt")
        assert params == TINY and vocab == labels.ix_to_word
        m = evaluate_split(model, labels, store, "test", params.score, 16)
        results = evaluate(model, params.score, labels, store, EvaluateAlignmentParams(beta=0.0))
        g = grounding(results.sentences, store, world.dataset, 0.5)
    for d in ("annotation", "search"):
        assert m[d]["r5"] >= 2.5 * m[f"{d}_chance"]["r5"], m
        assert m[d]["medr"] <= m[f"{d}_chance"]["medr"] / 3, m
    assert results.metrics["annotation"] == m["annotation"] and results.metrics["search"] == m["search"]
    assert g is not None and g["n_words"] > 100 and g["overall"] >= 60.0, g
    assert (tmp_path / "live" / "metrics.json").is_file()
    assert len(state.val_history) == TINY.epochs and 1 <= state.best_iteration <= state.iteration
    assert not files(tmp_path).resume.exists()  # a finished run leaves no state that a later run would resume


def _interrupt_at(iteration: int):  # noqa: ANN202
    def interrupt(i: int) -> None:
        if i == iteration:
            signal.raise_signal(signal.SIGINT)

    return interrupt


def test_resume_after_interrupt_is_exact(world, tmp_path: Path) -> None:
    labels = read_labels(world.labels_h5, world.vocab_json)
    p = AlignmentParams(hidden_size=16, word_embedding_size=8, batch_size=25, seq_per_img=2, epochs=3, lr=0.001,
                        dropout=0.2)  # dropout: the torch RNG must be restored too
    with RegionStore(world.regions_h5) as store:
        whole, whole_state, _ = fit(labels, store, p, tmp_path / "a")
        per_epoch = whole_state.iteration // p.epochs
        with pytest.raises(KeyboardInterrupt):
            fit(labels, store, p, tmp_path / "b", on_iteration=_interrupt_at(per_epoch + 1))  # mid-epoch
        assert read(files(tmp_path / "b").resume, RESUME_FORMAT)["state"]["iteration"] == per_epoch + 1
        assert not files(tmp_path / "b").model.exists()
        lines: list[str] = []
        resumed, resumed_state, was_resumed = fit(labels, store, p, tmp_path / "b", log=lines.append)
    assert was_resumed and any("resuming" in line for line in lines)
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    assert resumed_state.history == whole_state.history
    assert resumed_state.best_iteration == whole_state.best_iteration
    for name, tensor in whole_state.best_weights["model"].items():
        assert torch.equal(tensor, resumed_state.best_weights["model"][name]), name
    loss_a = (tmp_path / "a/live/plots/metrics/train/loss.tsv").read_text().splitlines()
    loss_b = (tmp_path / "b/live/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert len(loss_a) == len(loss_b) == p.epochs + 1  # header + one row per epoch, none twice
    assert [r.split("\t")[1:] for r in loss_a] == [r.split("\t")[1:] for r in loss_b]  # step, value (not time)


def test_resume_file_from_other_params_is_ignored(world, tmp_path: Path) -> None:
    labels = read_labels(world.labels_h5, world.vocab_json)
    p = AlignmentParams(hidden_size=8, word_embedding_size=4, batch_size=50, epochs=1, lr=0.001)
    lines: list[str] = []
    with RegionStore(world.regions_h5) as store:
        with pytest.raises(KeyboardInterrupt):
            fit(labels, store, p, tmp_path, on_iteration=_interrupt_at(1))
        other = AlignmentParams(hidden_size=8, word_embedding_size=4, batch_size=50, epochs=1, lr=0.002)
        _, state, resumed = fit(labels, store, other, tmp_path, log=lines.append)
    assert any("other params" in line for line in lines) and not resumed and len(state.val_history) == 1


def test_load_model_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt: not a readable torch file"):
        load_model(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="other.pt: format None, expected 'dvsa.alignment/2'"):
        load_model(tmp_path / "other.pt")
