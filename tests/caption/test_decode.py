from __future__ import annotations

import itertools

import pytest
import torch

from dvsa.caption.decode import beam_search, decode_batch, greedy, sample
from dvsa.caption.model import Captioner

D = 12


def model(vocab: int = 7, rnn_type: str = "lstm", seed: int = 0) -> Captioner:
    torch.manual_seed(seed)
    m = Captioner(vocab, D, rnn_type, rnn_size=16, num_layers=1, input_encoding_size=8, drop_prob_lm=0.0).eval()
    with torch.no_grad():  # sharper distributions so that captions are not all END at once
        m.logit.weight.mul_(4.0)
    return m


def seq_logprob(m: Captioner, feats: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
    """Total log p of each sequence (B, T): its words, plus END if it ends before the cap."""
    with torch.no_grad():
        lp = m(feats, seq, 1)  # (B, T + 1, V + 1)
    total = torch.zeros(seq.shape[0])
    for b in range(seq.shape[0]):
        for t in range(seq.shape[1]):
            total[b] += lp[b, t, seq[b, t]]
            if seq[b, t] == 0:
                break
    return total


@pytest.mark.parametrize("rnn_type", ["lstm", "rnn"])
def test_beam_one_is_greedy(rnn_type: str) -> None:
    m = model(rnn_type=rnn_type)
    feats = torch.randn(10, D)
    assert torch.equal(beam_search(m, feats, 1, 8)[0], greedy(m, feats, 8))


@pytest.mark.parametrize("rnn_type", ["lstm", "rnn"])
def test_batched_beam_equals_one_image_at_a_time(rnn_type: str) -> None:
    m = model(rnn_type=rnn_type)
    feats = torch.randn(8, D)
    seqs, scores = beam_search(m, feats, 3, 8)
    for i in range(8):
        one, score = beam_search(m, feats[i : i + 1], 3, 8)
        assert torch.equal(one[0], seqs[i])
        assert torch.allclose(score[0], scores[i], atol=1e-5)


def test_beam_scores_are_the_sequence_log_probabilities() -> None:
    m = model()
    feats = torch.randn(6, D)
    seqs, scores = beam_search(m, feats, 3, 6)
    assert torch.allclose(scores, seq_logprob(m, feats, seqs), atol=1e-4)


def test_wide_beam_finds_the_most_likely_caption() -> None:
    vocab, cap = 2, 3  # 3 tokens (END + 2 words), at most 3 steps: brute force over all sequences
    m = model(vocab=vocab, seed=3)
    feats = torch.randn(4, D)
    seqs, scores = beam_search(m, feats, beam_size=9, max_length=cap)
    for b in range(4):
        best = max(
            float(seq_logprob(m, feats[b : b + 1], torch.tensor([list(s)]))[0])
            for s in itertools.product(range(vocab + 1), repeat=cap)
            if all(s[t] == 0 for t in range(cap) if 0 in s[:t])  # only zeros after the END
        )
        assert float(scores[b]) == pytest.approx(best, abs=1e-4)


def test_length_cap_and_zeros_after_end() -> None:
    m = model()
    seqs = beam_search(m, torch.randn(5, D), 3, 4)[0]
    assert seqs.shape == (5, 4)
    for row in seqs.tolist():
        if 0 in row:
            assert all(w == 0 for w in row[row.index(0) :])


def test_sampling_is_seeded_and_low_temperature_is_greedy() -> None:
    m = model()
    feats = torch.randn(6, D)
    a = sample(m, feats, 8, 1.0, torch.Generator().manual_seed(5))
    b = sample(m, feats, 8, 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    cold = sample(m, feats, 8, 1e-4, torch.Generator().manual_seed(5))
    assert torch.equal(cold, greedy(m, feats, 8))
    with pytest.raises(ValueError, match="temperature"):
        sample(m, feats, 8, 0.0)


def test_decode_batch_dispatch() -> None:
    m = model()
    feats = torch.randn(3, D)
    assert torch.equal(decode_batch(m, feats, "greedy", 5), greedy(m, feats, 5))
    assert torch.equal(decode_batch(m, feats, "beam", 5, beam_size=2), beam_search(m, feats, 2, 5)[0])
    with pytest.raises(ValueError, match="unknown decoding method"):
        decode_batch(m, feats, "magic", 5)
