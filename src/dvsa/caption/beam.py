"""Decoding captions from a Captioner: greedy, sampling with a temperature, and beam search.

Every decoder runs on a batch of images at once; beam search keeps its B x K hypotheses in tensors
(one LSTM step per time step for all images and beams). Sequences are (B, max_length) int64 with words
1..V and 0 after the END, so ``dvsa.data.vocab.decode`` reads them directly. The length cap
``max_length`` ends any caption still open. Each decoder also returns the attention weights of the step
that emitted each word (B, max_length, R) for an attention model (None otherwise), so a report can show
which region each word looked at.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dvsa.caption.model import Captioner


@dataclass
class Decoded:
    seqs: Tensor  # (B, T) words, 0 after END
    attention: Tensor | None  # (B, T, R): weights of the step that emitted word t; None without attention


@torch.no_grad()
def greedy(model: Captioner, feats: Tensor, mask: Tensor, max_length: int) -> Decoded:
    """The most likely word at each step. feats (B, R, D), mask (B, R) -> (B, max_length)."""
    return _sample(model, feats, mask, max_length, temperature=0.0, generator=None)


@torch.no_grad()
def sample(
    model: Captioner,
    feats: Tensor,
    mask: Tensor,
    max_length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    uniforms: Tensor | None = None,
) -> Decoded:
    """Words drawn from softmax(log p / temperature). feats (B, R, D), mask (B, R) -> (B, max_length).

    With `uniforms` (B, max_length) in [0, 1), word t of row b is the inverse CDF of step t's distribution at
    uniforms[b, t] instead of a draw from `generator`: a row's caption then depends on its own numbers only,
    so the rows of a batch split among ranks are the rows one process would draw (self-critical training).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if uniforms is not None and uniforms.shape != (feats.shape[0], max_length):
        raise ValueError(f"uniforms must be (B, max_length) = {(feats.shape[0], max_length)}, got {tuple(uniforms.shape)}")
    return _sample(model, feats, mask, max_length, temperature, generator, uniforms)


def _sample(
    model: Captioner,
    feats: Tensor,
    mask: Tensor,
    max_length: int,
    temperature: float,
    generator: torch.Generator | None,
    uniforms: Tensor | None = None,
) -> Decoded:
    b, r = feats.shape[:2]
    seq = feats.new_zeros(b, max_length, dtype=torch.long)  # (B, T)
    attention = feats.new_zeros(b, max_length, r) if model.image == "regions" else None  # (B, T, R)
    done = torch.zeros(b, dtype=torch.bool, device=feats.device)  # (B,)
    logprobs, state = model.start(feats, mask)  # (B, V + 1)
    for t in range(max_length):
        if temperature == 0.0:
            word = logprobs.argmax(dim=1)  # (B,)
        elif uniforms is not None:
            cdf = torch.softmax(logprobs / temperature, dim=1).cumsum(dim=1)  # (B, V + 1)
            u = uniforms[:, t : t + 1].to(cdf.dtype) * cdf[:, -1:]  # (B, 1): cdf[-1] is 1 up to rounding
            word = torch.searchsorted(cdf, u, right=True)[:, 0].clamp_max(cdf.shape[1] - 1)  # (B,)
        else:
            probs = torch.softmax(logprobs / temperature, dim=1)
            word = torch.multinomial(probs, 1, generator=generator)[:, 0]
        word = word.masked_fill(done, 0)
        seq[:, t] = word
        if attention is not None and state.alpha is not None:
            attention[:, t] = state.alpha.masked_fill((word == 0)[:, None], 0.0)  # words only, not END
        done |= word == 0
        if bool(done.all()) or t == max_length - 1:
            break
        logprobs, state = model.step(word, state)
    return Decoded(seq, attention)


@torch.no_grad()
def beam_search(
    model: Captioner, feats: Tensor, mask: Tensor, beam_size: int, max_length: int
) -> tuple[Decoded, Tensor]:
    """Beam search over all images at once: the best of `beam_size` beams per image by total log p.

    feats (B, R, D), mask (B, R) -> the best sequences (B, max_length) with their attention, and their
    log-probabilities (B,). A beam that has emitted END stays finished with its score; the search stops when
    every beam is finished or at the length cap.
    """
    b, r = feats.shape[:2]
    logprobs, state = model.start(feats, mask)  # (B, V + 1)
    n_words = logprobs.shape[1]
    k = beam_size
    scores, word = logprobs.topk(min(k, n_words), dim=1)  # (B, K), (B, K)
    if k > n_words:  # more beams than words: the extra beams start finished at -inf and are never kept
        scores = torch.cat([scores, scores.new_full((b, k - n_words), float("-inf"))], dim=1)
        word = torch.cat([word, word.new_zeros(b, k - n_words)], dim=1)
    seqs = word[:, :, None]  # (B, K, 1)
    rows = torch.arange(b, device=feats.device).repeat_interleave(k)  # (B * K,)
    state = state.select(rows)
    with_attention = state.alpha is not None
    att = state.alpha.view(b, k, 1, r) if state.alpha is not None else None  # (B, K, 1, R)
    finished_row = torch.full((n_words,), float("-inf"), device=feats.device)
    finished_row[0] = 0.0  # a finished beam can only stay finished, at no cost
    for _ in range(1, max_length):
        done = seqs[:, :, -1] == 0  # (B, K)
        if bool(done.all()):
            break
        logprobs, state = model.step(seqs[:, :, -1].reshape(-1), state)  # (B * K, V + 1)
        logprobs = logprobs.view(b, k, n_words)
        logprobs = torch.where(done[:, :, None], finished_row, logprobs)  # (B, K, V + 1)
        candidates = (scores[:, :, None] + logprobs).view(b, k * n_words)  # (B, K * (V + 1))
        scores, flat = candidates.topk(k, dim=1)  # (B, K)
        parent, word = flat // n_words, flat % n_words  # (B, K)
        seqs = torch.cat([seqs.gather(1, parent[:, :, None].expand(-1, -1, seqs.shape[2])), word[:, :, None]], dim=2)
        if att is not None and state.alpha is not None:
            step_att = state.alpha.view(b, k, 1, r).gather(1, parent[:, :, None, None].expand(-1, -1, 1, r))
            att = torch.cat([att.gather(1, parent[:, :, None, None].expand(-1, -1, att.shape[2], r)), step_att], dim=2)
        state = state.select((parent + torch.arange(b, device=feats.device)[:, None] * k).view(-1))
    best = seqs[:, 0]  # (B, t): topk keeps beams sorted, best first
    out = feats.new_zeros(b, max_length, dtype=torch.long)
    out[:, : best.shape[1]] = best
    out = _zero_after_end(out)
    attention = None
    if with_attention and att is not None:
        attention = feats.new_zeros(b, max_length, r)
        attention[:, : att.shape[2]] = att[:, 0]
        attention = attention.masked_fill((out == 0)[:, :, None], 0.0)
    return Decoded(out, attention), scores[:, 0]


def _zero_after_end(seq: Tensor) -> Tensor:
    """Zero every position after the first 0 (END). (B, T) -> (B, T)."""
    ended = (seq == 0).int().cumsum(dim=1) > 0
    return seq.masked_fill(ended, 0)


def decode_batch(
    model: Captioner,
    feats: Tensor,
    mask: Tensor,
    method: str,
    max_length: int,
    beam_size: int = 3,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Decoded:
    """Dispatch on `method` (beam, greedy, sample). feats (B, R, D), mask (B, R) -> (B, max_length)."""
    if method == "beam":
        return beam_search(model, feats, mask, beam_size, max_length)[0]
    if method == "greedy":
        return greedy(model, feats, mask, max_length)
    if method == "sample":
        return sample(model, feats, mask, max_length, temperature, generator)
    raise ValueError(f"unknown decoding method {method!r} (beam, greedy or sample)")
