"""Self-critical sequence training (dvsa.caption.self_critical): the sampler, the log p of the samples, the
policy-gradient loss with both baselines, the reward, and the phase on the shared loop (lr, logs, resume)."""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsa.caption.beam import sample
from dvsa.caption.checkpoint import load_checkpoint
from dvsa.caption.config import CaptionerParams
from dvsa.caption.model import Captioner, sequence_logprob
from dvsa.caption.self_critical import Reward, self_critical_loss
from dvsa.caption.train import learning_rate
from dvsa.data.labels import read_labels
from dvsa.data.loader import CaptionBatch
from dvsa.errors import ParamsError
from dvsa.io import read_json
from dvsa.metrics.cider_d import CiderD, DocumentFrequencies, references_with_end
from dvsa.train.loop import step_seed
from tests.caption.test_train import TINY, run
from tests.caption.toy import write_toy

SC = replace(TINY, max_iters=30, val_every=10, self_critical_after=20, train_sample_n=3, sc_learning_rate=2e-3)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_toy(tmp_path_factory.mktemp("sc_toy"))


def model_and_inputs(b: int = 4, r: int = 5, d: int = 12, vocab: int = 9) -> tuple[Captioner, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    lm = Captioner(vocab_size=vocab, feat_dim=d, rnn_size=16, input_encoding_size=8, att_size=8).eval()
    feats = torch.randn(b, r, d)
    mask = torch.ones(b, r, dtype=torch.bool)
    mask[0, 3:] = False
    return lm, feats, mask


def step_by_step_logprob(lm: Captioner, feats: torch.Tensor, mask: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
    """The decoder's own log p of each row's words and END (when drawn: a full row has none), summed: (N,)."""
    out = torch.zeros(len(seqs))
    with torch.no_grad():
        logprobs, state = lm.start(feats, mask)
        for t in range(seqs.shape[1]):
            alive = (seqs[:, :t] > 0).all(dim=1)  # no END before t
            out += torch.where(alive, logprobs.gather(1, seqs[:, t : t + 1])[:, 0], torch.zeros(()))
            logprobs, state = lm.step(seqs[:, t], state)
    return out


def test_sampling_by_uniforms_is_the_inverse_cdf_and_does_not_depend_on_the_batch_split() -> None:
    lm, feats, mask = model_and_inputs()
    u = torch.rand(4, 6, generator=torch.Generator().manual_seed(1))
    whole = sample(lm, feats, mask, 6, uniforms=u).seqs
    parts = torch.cat([sample(lm, feats[:1], mask[:1], 6, uniforms=u[:1]).seqs,
                       sample(lm, feats[1:], mask[1:], 6, uniforms=u[1:]).seqs])
    assert torch.equal(whole, parts)
    with torch.no_grad():
        cdf = torch.softmax(lm.start(feats, mask)[0], dim=1).cumsum(dim=1)  # (B, V + 1)
    first = whole[:, 0]
    below = torch.where(first > 0, cdf.gather(1, (first - 1).clamp_min(0)[:, None])[:, 0], torch.zeros(()))
    assert bool((below <= u[:, 0]).all() and (u[:, 0] < cdf.gather(1, first[:, None])[:, 0]).all())


def test_sampled_words_follow_the_model_distribution() -> None:
    lm, feats, mask = model_and_inputs(b=1)
    n = 4000
    u = torch.rand(n, 1, generator=torch.Generator().manual_seed(2))
    first = sample(lm, feats.expand(n, -1, -1), mask.expand(n, -1), 1, uniforms=u).seqs[:, 0]
    with torch.no_grad():
        p = torch.softmax(lm.start(feats, mask)[0][0], dim=0)
    freq = torch.bincount(first, minlength=len(p)).double() / n
    assert float((freq - p.double()).abs().max()) < 0.03


def test_the_log_p_of_a_sample_is_the_decoders_over_its_words_and_end() -> None:
    lm, feats, mask = model_and_inputs()
    u = torch.rand(4, 5, generator=torch.Generator().manual_seed(3))
    seqs = sample(lm, feats, mask, 5, uniforms=u).seqs
    seqs[1] = torch.tensor([3, 4, 5, 6, 7])  # a capped row: no END, so no END term
    seqs[2] = torch.tensor([3, 0, 0, 0, 0])
    got = sequence_logprob(lm(feats, mask, seqs, 1), seqs)
    assert torch.allclose(got, step_by_step_logprob(lm, feats, mask, seqs), atol=1e-5)


def fixed_reward(seqs: np.ndarray, images: object) -> np.ndarray:
    """A reward the test can compute by hand: the number of words."""
    return (np.asarray(seqs) > 0).sum(axis=1).astype(np.float64)


@pytest.mark.parametrize("baseline", ["mean", "greedy"])
def test_the_loss_is_minus_advantage_times_log_p_over_the_sampled_tokens(baseline: str) -> None:
    lm, feats, mask = model_and_inputs()
    n, t = 3, 6
    p = replace(TINY, self_critical_after=0, train_sample_n=n, sc_baseline=baseline)
    batch = CaptionBatch(np.arange(4), np.zeros((12, t), dtype=np.int64), np.ones(12, dtype=np.int64))
    step = self_critical_loss(lm, lm, feats, mask, batch, slice(0, 4), 1.0, fixed_reward, p, 7, t)  # type: ignore[arg-type]
    u = torch.rand(4 * n, t, generator=torch.Generator().manual_seed(step_seed(p.seed, 7)))
    big_feats, big_mask = feats.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
    seqs = sample(lm, big_feats, big_mask, t, uniforms=u).seqs
    r = fixed_reward(seqs.numpy(), None)
    if baseline == "mean":
        per = r.reshape(4, n)
        b = ((per.sum(1, keepdims=True) - per) / (n - 1)).reshape(-1)
        assert np.allclose((r - b).reshape(4, n).sum(1), 0)  # the mean baseline's advantages sum to 0 per image
    else:
        from dvsa.caption.beam import greedy

        b = np.repeat(fixed_reward(greedy(lm, feats, mask, t).seqs.numpy(), None), n)
    logp = step_by_step_logprob(lm, big_feats, big_mask, seqs).double()
    tokens = int((seqs > 0).sum() + (seqs == 0).any(dim=1).sum())
    expected = float(-(torch.from_numpy(r - b) * logp).sum() / tokens)
    assert step.value == pytest.approx(expected, rel=1e-5)
    assert float(step.loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert step.logged["reward"] == pytest.approx(r.mean()) and step.logged["baseline"] == pytest.approx(b.mean())


def test_a_constant_reward_gives_no_gradient() -> None:
    lm, feats, mask = model_and_inputs()
    p = replace(TINY, self_critical_after=0, train_sample_n=2, sc_baseline="greedy")
    batch = CaptionBatch(np.arange(4), np.zeros((8, 4), dtype=np.int64), np.ones(8, dtype=np.int64))
    step = self_critical_loss(lm, lm, feats, mask, batch, slice(0, 4), 1.0, lambda s, i: np.ones(len(s)), p, 0, 4)
    step.loss.backward()
    assert all(float(q.grad.abs().max()) == 0.0 for q in lm.parameters() if q.grad is not None)


def test_the_reward_is_cider_d_against_the_images_train_references(toy: dict[str, Path]) -> None:
    labels = read_labels(toy["labels"], toy["vocab"])
    reward = Reward(labels, TINY)
    train = labels.split_indices("train")
    own = labels.captions(int(train[0]))[:1].astype(np.int64)  # one of its own references
    other = next(int(i) for i in train if labels.captions(int(i))[0][1] != own[0][1])  # another colour / shape
    wrong = labels.captions(other)[:1].astype(np.int64)
    got = reward(np.concatenate([own, wrong]), [int(train[0]), int(train[0])])
    refs = references_with_end(labels, train)
    cider = CiderD(DocumentFrequencies.from_references(refs))
    expected = cider.scores([refs[0][0], refs[[int(i) for i in train].index(other)][0]], [0, 0], cider.prepare(refs))
    assert np.allclose(got, expected) and got[0] > got[1]


def test_params_that_cannot_train_are_refused() -> None:
    with pytest.raises(ParamsError, match="train_sample_n >= 2"):
        CaptionerParams(self_critical_after=0, sc_baseline="mean", train_sample_n=1)
    with pytest.raises(ParamsError, match="must be > 0"):
        CaptionerParams(self_critical_after=0, cider_reward_weight=0.0)


def test_the_phase_has_its_own_learning_rate_and_decay() -> None:
    p = replace(SC, learning_rate=1e-2, learning_rate_decay_start=5, learning_rate_decay_every=5,
                sc_learning_rate=1e-3, sc_learning_rate_decay_start=4, sc_learning_rate_decay_every=2)
    assert learning_rate(p, 19) == pytest.approx(1e-2 * 2 ** (-14 / 5))
    assert learning_rate(p, 20) == learning_rate(p, 24) == 1e-3
    assert learning_rate(p, 26) == pytest.approx(1e-3 / 2)


def test_the_phase_logs_its_reward_and_resumes_exactly(toy: dict[str, Path], tmp_path: Path) -> None:
    whole = run(toy, tmp_path / "whole", SC)

    def interrupt(iteration: int) -> None:
        if iteration == 25:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run(toy, tmp_path / "split", SC, on_iteration=interrupt)
    resumed = run(toy, tmp_path / "split", SC)
    assert resumed["resumed"] and not whole["resumed"]
    a, b = load_checkpoint(tmp_path / "whole" / "captioner.pt"), load_checkpoint(tmp_path / "split" / "captioner.pt")
    assert a["history"] == b["history"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    rows = [r for r in a["history"] if "train/loss" in r]
    assert [("train/reward" in r) for r in rows] == [False, False, True]  # train rows of 10 iterations
    assert rows[-1]["train/lr"] == SC.sc_learning_rate
    history = read_json(tmp_path / "whole" / "logs" / "history.json")
    assert [v["step"] for v in history["val_history"]] == [10, 20, 30]
