from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsa.caption.checkpoint import load_captioner, load_checkpoint
from dvsa.caption.cnn import CaptionCNN
from dvsa.caption.config import CaptionerParams
from dvsa.caption.train import RESUME_FORMAT, learning_rate, make_protos, train_captioner, train_step
from dvsa.checkpoint import read
from dvsa.data.labels import read_labels
from dvsa.data.loader import iterate_batches
from dvsa.errors import TrainingError
from dvsa.features import CachedFeatures, feature_stats
from dvsa.io import read_json
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.regions.store import RegionStore
from dvsa.train.loop import Group, gradient_policy
from tests.caption.toy import write_toy
from tests.regions.toy import tiny_params

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


@pytest.mark.parametrize("image,rnn_type", [("regions", "lstm"), ("whole", "lstm"), ("whole", "rnn")])
def test_training_learns_the_toy_world_and_keeps_the_best_val_cider(
    toy: dict[str, Path], tmp_path: Path, image: str, rnn_type: str
) -> None:
    summary = run(toy, tmp_path, replace(TINY, max_iters=60, val_every=20, image=image, rnn_type=rnn_type))
    assert summary["val"]["val/CIDEr"] > 2.0  # captions name the right colour and shape
    model, vocab, data = load_captioner(tmp_path / "captioner.pt")
    vals = [r for r in data["history"] if "val/CIDEr" in r]
    assert [r["step"] for r in vals] == [20, 40, 60]
    best = max(vals, key=lambda r: r["val/CIDEr"])
    assert data["iteration"] == best["step"] and data["val"]["val/CIDEr"] == best["val/CIDEr"]
    assert set(vocab.values()) >= {"red", "blue", "circle", "square"}
    assert not (tmp_path / "captioner.resume.pt").exists()
    assert (tmp_path / "logs" / "plots" / "metrics" / "train" / "loss.tsv").is_file()


def test_history_keeps_every_validation_with_val_predictions_only(toy: dict[str, Path], tmp_path: Path) -> None:
    run(toy, tmp_path, replace(TINY, max_iters=20, val_every=10, val_predictions=4))
    history = read_json(tmp_path / "logs" / "history.json")
    labels = read_labels(toy["labels"], toy["vocab"])
    val_ids = {labels.images[int(i)]["id"] for i in labels.split_indices("val")}
    assert [v["step"] for v in history["val_history"]] == [10, 20]
    for v in history["val_history"]:
        assert len(v["predictions"]) == 4
        assert {p["image_id"] for p in v["predictions"]} <= val_ids  # selection and predictions on val, not test
        assert set(v) >= {"val/loss", "val/CIDEr", "val/Bleu_4"}
    assert history["best_iteration"] in (10, 20)
    assert len(history["loss_history"]) == 2


def test_interrupted_training_resumes_exactly(toy: dict[str, Path], tmp_path: Path) -> None:
    params = replace(TINY, drop_prob_lm=0.5)
    whole = run(toy, tmp_path / "whole", params)

    def interrupt(iteration: int) -> None:
        if iteration == 17:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run(toy, tmp_path / "split", params, on_iteration=interrupt)
    assert not (tmp_path / "split" / "captioner.pt").exists()
    state = read(tmp_path / "split" / "captioner.resume.pt", RESUME_FORMAT)
    assert state["state"]["iteration"] == 17
    resumed = run(toy, tmp_path / "split", params)
    assert resumed["resumed"] and not whole["resumed"]
    a = load_checkpoint(tmp_path / "whole" / "captioner.pt")
    b = load_checkpoint(tmp_path / "split" / "captioner.pt")
    assert a["history"] == b["history"]
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    curves = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*.tsv"))
    assert curves and curves == sorted(p.relative_to(tmp_path / "split") for p in (tmp_path / "split").rglob("*.tsv"))
    for curve in curves:  # the curves the resumed run leaves are the uninterrupted run's, each step once
        assert (tmp_path / "split" / curve).read_text() == (tmp_path / "whole" / curve).read_text(), curve


def test_resume_file_from_other_params_is_ignored(
    toy: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupt(iteration: int) -> None:
        if iteration == 5:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run(toy, tmp_path, replace(TINY, max_iters=10), on_iteration=interrupt)
    summary = run(toy, tmp_path, replace(TINY, max_iters=10, learning_rate=5e-3))
    assert not summary["resumed"]
    assert "made with other params; training from scratch" in capsys.readouterr().out


def test_exploding_loss_stops_with_a_training_error_and_no_model(toy: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"loss exploded at iteration \d+") as e:
        run(toy, tmp_path, replace(TINY, learning_rate=100.0, grad_clip=100.0))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "captioner.pt").exists()
    assert not (tmp_path / "captioner.resume.pt").exists()


def test_feature_stats_are_the_train_mean_and_var(toy: dict[str, Path]) -> None:
    labels = read_labels(toy["labels"], toy["vocab"])
    rows = labels.split_indices("train")
    with RegionStore(toy["regions"]) as store:
        mean, var = feature_stats(CachedFeatures(store, geometry=False), rows, whole=True, chunk=7)
        f = store.feats(rows, region=0).astype(np.float64)
    assert np.allclose(mean.numpy(), f.mean(0), atol=1e-5)
    assert np.allclose(var.numpy(), f.var(0), atol=1e-5)


@pytest.mark.parametrize("feat_norm", ["standardize", "none"])
def test_the_checkpoint_carries_the_feature_standardisation(
    toy: dict[str, Path], tmp_path: Path, feat_norm: str
) -> None:
    run(toy, tmp_path, replace(TINY, max_iters=2, val_every=2, feat_norm=feat_norm))
    model, _, _ = load_captioner(tmp_path / "captioner.pt")
    assert bool((model.feat_norm.mean != 0).any()) == (feat_norm == "standardize")


# ---- the guards of the update: applied learning rate, clamping, L2 -----------------------------------------


def one_step(toy: dict[str, Path], params: CaptionerParams, iteration: int, cnn: CaptionCNN | None = None):  # type: ignore[no-untyped-def]
    """(parameters before, after, protos) of train_step at `iteration` with plain SGD (lr 1 = the update is
    minus the processed gradient) in place of Adam."""
    labels = read_labels(toy["labels"], toy["vocab"])
    with RegionStore(toy["regions"]) as store:
        source = CachedFeatures(store, params.region_geometry)
        torch.manual_seed(0)
        protos = make_protos(params, labels.vocab_size, source.dim, cnn)
        protos.lm_optim = torch.optim.SGD(protos.lm.parameters(), lr=params.learning_rate)
        batch = next(iterate_batches(labels, "train", params.batch_size, params.seq_per_img))
        before = [p.detach().clone() for p in protos.lm.parameters()]
        train_step(protos, source, batch, params, iteration)
    return before, [p.detach().clone() for p in protos.lm.parameters()], protos


GUARD = replace(TINY, learning_rate=1.0, learning_rate_decay_start=-1, drop_prob_lm=0.0, grad_clip=1e9)


def test_the_decayed_learning_rate_is_the_one_applied(toy: dict[str, Path]) -> None:
    p = replace(TINY, learning_rate=1e-2, learning_rate_decay_start=10, learning_rate_decay_every=5)
    _, _, protos = one_step(toy, p, iteration=20)
    assert protos.lm_optim.param_groups[0]["lr"] == pytest.approx(1e-2 * 2**-2)
    plain = one_step(toy, replace(GUARD, learning_rate=1e-3), iteration=0)
    decayed = one_step(
        toy, replace(GUARD, learning_rate=1e-3, learning_rate_decay_start=0, learning_rate_decay_every=1), 3
    )
    step_plain = torch.cat([(a - b).flatten() for a, b in zip(plain[1], plain[0])])
    step_decayed = torch.cat([(a - b).flatten() for a, b in zip(decayed[1], decayed[0])])
    assert torch.allclose(step_decayed, step_plain / 8, rtol=1e-3, atol=2e-7)  # 2^-(3 - 0) / 1; float32 rounding


def test_every_gradient_element_is_clamped(toy: dict[str, Path]) -> None:
    before, after, _ = one_step(toy, replace(GUARD, grad_clip=1e-4), iteration=0)
    steps = torch.cat([(a - b).abs().flatten() for a, b in zip(after, before)])
    assert float(steps.max()) == pytest.approx(1e-4, rel=1e-3)  # some gradients were larger, and were clamped
    unclamped = one_step(toy, GUARD, iteration=0)
    assert float(torch.cat([(a - b).abs().flatten() for a, b in zip(unclamped[1], unclamped[0])]).max()) > 1e-3


def test_l2_weight_decay_is_applied_when_configured(toy: dict[str, Path]) -> None:
    before, plain, _ = one_step(toy, GUARD, iteration=0)
    _, decayed, _ = one_step(toy, replace(GUARD, weight_decay=0.01), iteration=0)
    for b, p, d in zip(before, plain, decayed):
        assert torch.allclose(d - p, -0.01 * b, atol=1e-6)


def test_l2_comes_before_the_clamp_as_in_train_lua() -> None:
    w = torch.nn.Parameter(torch.tensor([10.0, -10.0, 0.0]))
    w.grad = torch.tensor([0.0, 0.0, 5.0])
    gradient_policy(Group([w], torch.optim.SGD([w], lr=0.0), lambda i: 0.0, l2=0.1, clamp=0.5))
    assert torch.equal(w.grad, torch.tensor([0.5, -0.5, 0.5]))


# ---- neuraltalk2's protos.cnn: finetuning after finetune_cnn_after --------------------------------------


@pytest.fixture(scope="module")
def toy48(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The toy world with 48-d features: the tiny region CNN's fc7 size."""
    return write_toy(tmp_path_factory.mktemp("toy48"), dim=48)


def tiny_cnn() -> CaptionCNN:
    torch.manual_seed(3)
    return CaptionCNN(ShapesRegionCNN(tiny_params().net, ["red circle", "blue square"]))


def test_the_cnn_is_fixed_before_finetune_cnn_after_and_moves_after(toy48: dict[str, Path], tmp_path: Path) -> None:
    cnn = tiny_cnn()
    frozen_parts = {
        k: v.clone() for k, v in cnn.net.state_dict().items() if not k.startswith(("trunk.", "head.fc6", "head.fc7"))
    }
    bn_stats = {k: v.clone() for k, v in cnn.net.state_dict().items() if "running_" in k}
    tuned = [p.detach().clone() for p in cnn.finetuned_parameters()]
    seen: dict[int, list[torch.Tensor]] = {}

    def record(iteration: int) -> None:
        seen[iteration] = [p.detach().clone() for p in cnn.finetuned_parameters()]

    labels = read_labels(toy48["labels"], toy48["vocab"])
    paths = [Path(toy48["dataset"]).parent / "images" / im["file_path"] for im in labels.images]
    params = replace(TINY, max_iters=6, val_every=6, finetune_cnn_after=3, cnn_learning_rate=1e-2)
    run(toy48, tmp_path, params, cnn=cnn, image_paths=paths, on_iteration=record)
    for i in (1, 2, 3):  # iterations 0, 1, 2 (0-based) are before finetune_cnn_after = 3
        assert all(torch.equal(a, b) for a, b in zip(seen[i], tuned)), i
    for i in (4, 5, 6):
        assert not all(torch.equal(a, b) for a, b in zip(seen[i], seen[i - 1])), i
    state = cnn.net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen_parts.items())  # detector parts never move
    assert all(torch.equal(state[k], v) for k, v in bn_stats.items())  # BatchNorm frozen
    ckpt = load_checkpoint(tmp_path / "captioner.pt")
    assert set(ckpt["cnn"]) == set(cnn.encoder_state_dict())


def test_a_cnn_that_never_finetunes_is_never_updated(toy48: dict[str, Path], tmp_path: Path) -> None:
    cnn = tiny_cnn()
    tuned = [p.detach().clone() for p in cnn.finetuned_parameters()]
    labels = read_labels(toy48["labels"], toy48["vocab"])
    paths = [Path(toy48["dataset"]).parent / "images" / im["file_path"] for im in labels.images]
    run(toy48, tmp_path, replace(TINY, max_iters=4, val_every=4, finetune_cnn_after=-1), cnn=cnn, image_paths=paths)
    assert all(torch.equal(a, b) for a, b in zip(cnn.finetuned_parameters(), tuned))
