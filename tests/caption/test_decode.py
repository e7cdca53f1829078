from __future__ import annotations

import itertools

import pytest
import torch

from dvsa.caption.beam import beam_search, constrained_beam_search, decode_batch, greedy, sample
from dvsa.caption.model import Captioner

D, R = 12, 4
MODES = [("regions", "lstm"), ("whole", "lstm"), ("whole", "rnn")]


def model(vocab: int = 7, image: str = "regions", rnn_type: str = "lstm", seed: int = 0) -> Captioner:
    torch.manual_seed(seed)
    m = Captioner(
        vocab, D, image, rnn_type, rnn_size=16, num_layers=1, input_encoding_size=8, att_size=8, drop_prob_lm=0.0
    )
    with torch.no_grad():  # sharper distributions so that captions are not all END at once
        m.logit.weight.mul_(4.0)
    return m.eval()


def images(b: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random region features (b, R, D) with 1..R real regions each."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(1, R + 1, (b,), generator=g)
    mask = torch.arange(R)[None, :] < n[:, None]
    return torch.randn(b, R, D, generator=g) * mask[:, :, None], mask


def seq_logprob(m: Captioner, feats: torch.Tensor, mask: torch.Tensor, seq: torch.Tensor) -> torch.Tensor:
    """Total log p of each sequence (B, T): its words, plus END if it ends before the cap."""
    with torch.no_grad():
        lp = m(feats, mask, seq, 1)  # (B, T + 1, V + 1)
    total = torch.zeros(seq.shape[0])
    for b in range(seq.shape[0]):
        for t in range(seq.shape[1]):
            total[b] += lp[b, t, seq[b, t]]
            if seq[b, t] == 0:
                break
    return total


@pytest.mark.parametrize("image,rnn_type", MODES)
def test_beam_one_is_greedy(image: str, rnn_type: str) -> None:
    m = model(image=image, rnn_type=rnn_type)
    feats, mask = images(10)
    beam, greedy_out = beam_search(m, feats, mask, 1, 8)[0], greedy(m, feats, mask, 8)
    assert torch.equal(beam.seqs, greedy_out.seqs)
    if image == "regions":
        assert beam.attention is not None and greedy_out.attention is not None
        assert torch.allclose(beam.attention, greedy_out.attention, atol=1e-6)


@pytest.mark.parametrize("image,rnn_type", MODES)
def test_batched_beam_equals_one_image_at_a_time(image: str, rnn_type: str) -> None:
    m = model(image=image, rnn_type=rnn_type)
    feats, mask = images(8)
    out, scores = beam_search(m, feats, mask, 3, 8)
    for i in range(8):
        one, score = beam_search(m, feats[i : i + 1], mask[i : i + 1], 3, 8)
        assert torch.equal(one.seqs[0], out.seqs[i])
        assert torch.allclose(score[0], scores[i], atol=1e-5)


def test_beam_scores_are_the_sequence_log_probabilities() -> None:
    m = model()
    feats, mask = images(6)
    out, scores = beam_search(m, feats, mask, 3, 6)
    assert torch.allclose(scores, seq_logprob(m, feats, mask, out.seqs), atol=1e-4)


def test_beam_attention_is_that_of_the_kept_caption() -> None:
    """The attention returned with each word is the teacher-forced attention of the chosen sequence."""
    m = model()
    feats, mask = images(6)
    out, _ = beam_search(m, feats, mask, 3, 6)
    assert out.attention is not None
    with torch.no_grad():
        _, alpha = m.forward_with_attention(feats, mask, out.seqs, 1)  # (B, T + 1, R)
    assert alpha is not None
    words = out.seqs > 0
    assert torch.allclose(out.attention[words], alpha[:, :-1][words], atol=1e-5)
    assert torch.all(out.attention[~words] == 0)
    assert torch.all(out.attention[~mask[:, None, :].expand_as(out.attention)] == 0)  # never on padding


def test_wide_beam_finds_the_most_likely_caption() -> None:
    vocab, cap = 2, 3  # 3 tokens (END + 2 words), at most 3 steps: brute force over all sequences
    m = model(vocab=vocab, seed=3)
    feats, mask = images(4)
    out, scores = beam_search(m, feats, mask, beam_size=9, max_length=cap)
    for b in range(4):
        best = max(
            float(seq_logprob(m, feats[b : b + 1], mask[b : b + 1], torch.tensor([list(s)]))[0])
            for s in itertools.product(range(vocab + 1), repeat=cap)
            if all(s[t] == 0 for t in range(cap) if 0 in s[:t])  # only zeros after the END
        )
        assert float(scores[b]) == pytest.approx(best, abs=1e-4)


def all_sequences(vocab: int, cap: int) -> list[tuple[int, ...]]:
    """Every sequence of at most `cap` tokens: words 1..vocab, zeros after an END."""
    return [
        s for s in itertools.product(range(vocab + 1), repeat=cap) if all(s[t] == 0 for t in range(cap) if 0 in s[:t])
    ]


@pytest.mark.parametrize("required", [[2], [1, 3]])
def test_wide_constrained_beam_finds_the_most_likely_caption_with_a_required_word(required: list[int]) -> None:
    """Brute force over every sequence: the result holds a required word and no sequence that holds one is
    more likely; here the unconstrained best often has none, so a search that ignores the constraint fails."""
    vocab, cap = 3, 3
    m = model(vocab=vocab, seed=3)
    feats, mask = images(6)
    out, scores = constrained_beam_search(m, feats, mask, 16, cap, torch.tensor(required))
    free, _ = beam_search(m, feats, mask, 16, cap)
    assert any(not set(row) & set(required) for row in free.seqs.tolist())  # the constraint binds somewhere
    for b in range(6):
        assert set(out.seqs[b].tolist()) & set(required)
        allowed = [s for s in all_sequences(vocab, cap) if set(s) & set(required)]
        logp = seq_logprob(m, feats[b : b + 1].expand(len(allowed), -1, -1), mask[b : b + 1].expand(len(allowed), -1),
                           torch.tensor(allowed))
        assert float(scores[b]) == pytest.approx(float(logp.max()), abs=1e-4)
        assert float(seq_logprob(m, feats[b : b + 1], mask[b : b + 1], out.seqs[b : b + 1])[0]) == pytest.approx(
            float(scores[b]), abs=1e-4)


def test_constrained_beam_is_batched_exactly_and_keeps_the_attention_of_its_caption() -> None:
    m = model()
    feats, mask = images(6)
    required = torch.tensor([4])
    out, scores = constrained_beam_search(m, feats, mask, 3, 7, required)
    for i in range(6):
        one, score = constrained_beam_search(m, feats[i : i + 1], mask[i : i + 1], 3, 7, required)
        assert torch.equal(one.seqs[0], out.seqs[i])
        assert torch.allclose(score[0], scores[i], atol=1e-5)
    assert all(4 in row for row in out.seqs.tolist())
    with torch.no_grad():
        _, alpha = m.forward_with_attention(feats, mask, out.seqs, 1)  # (B, T + 1, R)
    words = out.seqs > 0
    assert out.attention is not None and alpha is not None
    assert torch.allclose(out.attention[words], alpha[:, :-1][words], atol=1e-5)
    assert torch.all(out.attention[~words] == 0)


def test_constrained_beam_rejects_no_words_and_ids_outside_the_vocabulary() -> None:
    m = model(vocab=5)
    feats, mask = images(2)
    with pytest.raises(ValueError, match="at least one required word"):
        constrained_beam_search(m, feats, mask, 2, 5, torch.tensor([], dtype=torch.long))
    for bad in (0, 6):
        with pytest.raises(ValueError, match="word ids 1..5"):
            constrained_beam_search(m, feats, mask, 2, 5, torch.tensor([bad]))


def test_length_cap_and_zeros_after_end() -> None:
    m = model()
    seqs = beam_search(m, *images(5), 3, 4)[0].seqs
    assert seqs.shape == (5, 4)
    for row in seqs.tolist():
        if 0 in row:
            assert all(w == 0 for w in row[row.index(0) :])


def test_sampling_is_seeded_and_low_temperature_is_greedy() -> None:
    m = model()
    feats, mask = images(6)
    a = sample(m, feats, mask, 8, 1.0, torch.Generator().manual_seed(5))
    b = sample(m, feats, mask, 8, 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(a.seqs, b.seqs)
    cold = sample(m, feats, mask, 8, 1e-4, torch.Generator().manual_seed(5))
    assert torch.equal(cold.seqs, greedy(m, feats, mask, 8).seqs)
    with pytest.raises(ValueError, match="temperature"):
        sample(m, feats, mask, 8, 0.0)


def test_decode_batch_dispatch() -> None:
    m = model()
    feats, mask = images(3)
    assert torch.equal(decode_batch(m, feats, mask, "greedy", 5).seqs, greedy(m, feats, mask, 5).seqs)
    assert torch.equal(
        decode_batch(m, feats, mask, "beam", 5, beam_size=2).seqs, beam_search(m, feats, mask, 2, 5)[0].seqs
    )
    with pytest.raises(ValueError, match="unknown decoding method"):
        decode_batch(m, feats, mask, "magic", 5)
