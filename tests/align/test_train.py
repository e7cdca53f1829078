"""Training on the tiny synthetic world: beats chance by a wide margin; exact resume after an interrupt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dvsa.align.config import AlignmentParams, EvaluateAlignmentParams
from dvsa.align.encode import evaluate_split
from dvsa.align.evaluation import evaluate, grounding
from dvsa.align.train import load_model, save_model, train
from dvsa.data.labels import read_labels
from dvsa.errors import InputError
from dvsa.regions.store import RegionStore

TINY = AlignmentParams(hidden_size=32, word_embedding_size=16, batch_size=20, seq_per_img=3, epochs=8, lr=0.001)


def _quiet(_: str) -> None:
    pass


def test_tiny_end_to_end_beats_chance(world, tmp_path: Path) -> None:
    labels = read_labels(world.labels_h5, world.vocab_json)
    with RegionStore(world.regions_h5) as store:
        _, state = train(labels, store, TINY, tmp_path / "resume.pt", tmp_path / "live", log=_quiet)
        save_model(tmp_path / "alignment.pt", state, TINY, labels, store.dim)
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
    assert len(state.history) == TINY.epochs and 1 <= state.best_epoch <= TINY.epochs


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def test_resume_after_interrupt_is_exact(world, tmp_path: Path) -> None:
    labels = read_labels(world.labels_h5, world.vocab_json)
    p = AlignmentParams(hidden_size=16, word_embedding_size=8, batch_size=25, seq_per_img=2, epochs=3, lr=0.001,
                        dropout=0.2)  # dropout: the torch RNG must be restored too
    with RegionStore(world.regions_h5) as store:
        whole, whole_state = train(labels, store, p, tmp_path / "a.pt", tmp_path / "live_a", log=_quiet)
        train(labels, store, p, tmp_path / "b.pt", tmp_path / "live_b", stop_after=1, log=_quiet)
        assert _weights(tmp_path / "b.pt")["state"]["epoch"] == 1
        lines: list[str] = []
        resumed, resumed_state = train(labels, store, p, tmp_path / "b.pt", tmp_path / "live_b", log=lines.append)
    assert any("resuming" in line for line in lines)
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    assert resumed_state.history == whole_state.history and resumed_state.best_epoch == whole_state.best_epoch
    for name, tensor in whole_state.best_state_dict.items():
        assert torch.equal(tensor, resumed_state.best_state_dict[name]), name
    loss_a = (tmp_path / "live_a/plots/metrics/train/loss.tsv").read_text().splitlines()
    loss_b = (tmp_path / "live_b/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert len(loss_a) == len(loss_b) == p.epochs + 1  # header + one row per epoch, none twice
    assert [r.split("\t")[1:] for r in loss_a] == [r.split("\t")[1:] for r in loss_b]  # step, value (not time)


def test_resume_file_from_other_params_is_ignored(world, tmp_path: Path) -> None:
    labels = read_labels(world.labels_h5, world.vocab_json)
    p = AlignmentParams(hidden_size=8, word_embedding_size=4, batch_size=50, epochs=1, lr=0.001)
    lines: list[str] = []
    with RegionStore(world.regions_h5) as store:
        train(labels, store, p, tmp_path / "r.pt", tmp_path / "live", log=_quiet)
        other = AlignmentParams(hidden_size=8, word_embedding_size=4, batch_size=50, epochs=1, lr=0.002)
        _, state = train(labels, store, other, tmp_path / "r.pt", tmp_path / "live", log=lines.append)
    assert any("other params" in line for line in lines) and len(state.history) == 1


def test_load_model_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt: not a readable checkpoint"):
        load_model(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="other.pt: not an alignment model"):
        load_model(tmp_path / "other.pt")
