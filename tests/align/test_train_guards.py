"""Guards of the alignment trainer that its results alone would not reveal: the applied step (lr, L2 weight
decay, element-wise gradient clipping) and model selection on the val split, never the test split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dvsa.align.train as align_train
from dvsa.align.config import AlignmentParams
from dvsa.align.model import AlignmentModel
from dvsa.align.train import make_optimizer
from dvsa.data.labels import read_labels
from dvsa.regions.store import RegionStore
from tests.align.test_train import fit

BIG, SMALL = 3.0, -0.5  # the gradient elements the fixed loss gives: alternately oversized and not


def _fixed_gradient(w: torch.Tensor) -> torch.Tensor:
    g = torch.full_like(w, BIG).view(-1)
    g[1::2] = SMALL
    return g.view_as(w)


def _fixed_loss(model: AlignmentModel, *_: object) -> torch.Tensor:
    """sum_w <c_w, w>: d loss / d w = c_w, known exactly, whatever the batch."""
    return sum((_fixed_gradient(w.detach()) * w).sum() for w in model.parameters())


@pytest.mark.parametrize(("grad_clip", "weight_decay"), [(1.0, 0.5), (0.2, 0.0), (0.0, 0.5)])
def test_one_sgd_step_applies_lr_l2_and_clipping(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 grad_clip: float, weight_decay: float) -> None:
    p = AlignmentParams(hidden_size=8, word_embedding_size=4, batch_size=1000, seq_per_img=2, epochs=1, lr=0.05,
                        momentum=0.9, weight_decay=weight_decay, grad_clip=grad_clip, optimizer="sgd")
    labels = read_labels(world.labels_h5, world.vocab_json)
    monkeypatch.setattr(align_train, "batch_loss", _fixed_loss)
    with RegionStore(world.regions_h5) as store:
        torch.manual_seed(p.seed)
        start = AlignmentModel(labels.vocab_size, store.dim, p).state_dict()  # the weights train() starts from
        model, _, _ = fit(labels, store, p, tmp_path)
    after = model.state_dict()
    for name, w0 in start.items():  # one batch = one step: w1 = w0 - lr * (clip(c) + wd * w0)
        c = _fixed_gradient(w0)
        clipped = c.clamp(-grad_clip, grad_clip) if grad_clip > 0 else c
        expected = w0 - p.lr * (clipped + weight_decay * w0)
        assert torch.allclose(after[name], expected, rtol=0, atol=1e-6), name


def test_adam_gets_the_lr_and_weight_decay() -> None:
    p = AlignmentParams(optimizer="adam", lr=0.003, weight_decay=0.02)
    opt = make_optimizer(torch.nn.Linear(2, 2), p)
    assert isinstance(opt, torch.optim.Adam)
    assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == [(0.003, 0.02)]


def test_the_model_is_selected_on_val_and_the_best_epoch_is_kept(world, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    p = AlignmentParams(hidden_size=8, word_embedding_size=4, batch_size=50, seq_per_img=2, epochs=3, lr=0.01)
    rsums = iter([5.0, 9.0, 7.0])
    splits: list[str] = []
    seen: list[dict[str, torch.Tensor]] = []

    def fake_evaluate(model, labels, store, split, score, batch_size):  # noqa: ANN001, ANN202
        splits.append(split)
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        ranks = {"r1": next(rsums), "r5": 0.0, "r10": 0.0, "medr": 1.0}
        return {"annotation": ranks, "search": {**ranks, "r1": 0.0}}

    monkeypatch.setattr(align_train, "evaluate_split", fake_evaluate)
    labels = read_labels(world.labels_h5, world.vocab_json)
    with RegionStore(world.regions_h5) as store:
        model, state, _ = fit(labels, store, p, tmp_path)
    assert splits == ["val"] * 3
    assert state.best_iteration == 2 * state.iteration // 3 and state.best_score == 9.0
    kept = torch.load(tmp_path / "alignment.pt", weights_only=True)
    assert kept["epoch"] == 2 and kept["val"]["val/rsum"] == 9.0
    for name, w in seen[1].items():
        assert torch.equal(kept["state_dict"][name], w), name
    assert not torch.equal(seen[1]["regions.proj.weight"], model.state_dict()["regions.proj.weight"])
