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


@torch.no_grad()
def constrained_beam_search(
    model: Captioner, feats: Tensor, mask: Tensor, beam_size: int, max_length: int, required: Tensor
) -> tuple[Decoded, Tensor]:
    """Beam search for the most likely caption that contains a word of `required` (M,) word ids: constrained
    beam search (Anderson et al., EMNLP 2017) with a two-state automaton, `beam_size` beams that have not
    emitted such a word yet and `beam_size` that have; END is only allowed in the second state, and the best
    beam of the second state is returned (at the length cap, the best that reached it).

    feats (B, R, D), mask (B, R) -> sequences (B, max_length) with their attention, and log-probabilities (B,).
    How a captioner says what it was not going to say: asked for a relation or a count, which one does it state?
    """
    if required.numel() == 0:
        raise ValueError("constrained beam search needs at least one required word")
    b, r = feats.shape[:2]
    k, kk = beam_size, 2 * beam_size
    logprobs, state = model.start(feats, mask)  # (B, V + 1)
    n_words = logprobs.shape[1]
    if int(required.min()) < 1 or int(required.max()) >= n_words:
        raise ValueError(f"required words must be word ids 1..{n_words - 1}")
    is_required = torch.zeros(n_words, dtype=torch.bool, device=feats.device)
    is_required[required.to(feats.device)] = True
    neg = torch.tensor(float("-inf"), device=feats.device)
    state = state.select(torch.arange(b, device=feats.device).repeat_interleave(kk))
    logprobs = logprobs[:, None].expand(b, kk, n_words)  # (B, 2K, V + 1): one live beam of each image so far
    scores = torch.full((b, kk), float("-inf"), device=feats.device)
    scores[:, 0] = 0.0
    satisfied = torch.zeros(b, kk, dtype=torch.bool, device=feats.device)  # (B, 2K): has emitted a required word
    second_state = (torch.arange(kk, device=feats.device) >= k).expand(b, kk)  # after a step: beams K.. satisfied
    not_end = torch.arange(n_words, device=feats.device) > 0  # (V + 1,)
    done = torch.zeros(b, kk, dtype=torch.bool, device=feats.device)
    seqs = feats.new_zeros(b, kk, 0, dtype=torch.long)  # (B, 2K, t)
    att = feats.new_zeros(b, kk, 0, r) if state.alpha is not None else None  # (B, 2K, t, R)
    finished_row = torch.full((n_words,), float("-inf"), device=feats.device)
    finished_row[0] = 0.0
    for t in range(max_length):
        logprobs = torch.where(satisfied[:, :, None] | not_end, logprobs, neg)  # END only once satisfied
        logprobs = torch.where(done[:, :, None], finished_row, logprobs)  # (B, 2K, V + 1)
        candidates = scores[:, :, None] + logprobs  # (B, 2K, V + 1)
        reaches = (satisfied[:, :, None] | is_required).view(b, -1)  # (B, 2K (V + 1)): the state after the word
        flat = candidates.view(b, -1)
        first, first_ix = torch.where(reaches, neg, flat).topk(k, dim=1)  # (B, K) still unsatisfied
        second, second_ix = torch.where(reaches, flat, neg).topk(k, dim=1)  # (B, K) satisfied
        scores, index = torch.cat([first, second], dim=1), torch.cat([first_ix, second_ix], dim=1)  # (B, 2K)
        parent, word = index // n_words, index % n_words  # (B, 2K)
        seqs = torch.cat([seqs.gather(1, parent[:, :, None].expand(-1, -1, seqs.shape[2])), word[:, :, None]], dim=2)
        if att is not None and state.alpha is not None:
            step_att = state.alpha.view(b, kk, 1, r).gather(1, parent[:, :, None, None].expand(-1, -1, 1, r))
            att = torch.cat([att.gather(1, parent[:, :, None, None].expand(-1, -1, att.shape[2], r)), step_att], dim=2)
        done = done.gather(1, parent) | (word == 0)
        satisfied = second_state
        # exact stop: every satisfied beam has ended and no unsatisfied one can still beat the best of them
        if t == max_length - 1 or bool((done[:, k:].all(dim=1) & (scores[:, :k].max(dim=1).values <= scores[:, k])).all()):
            break
        state = state.select((parent + torch.arange(b, device=feats.device)[:, None] * kk).view(-1))
        logprobs, state = model.step(seqs[:, :, -1].reshape(-1), state)
        logprobs = logprobs.view(b, kk, n_words)
    out = _zero_after_end(seqs[:, k])  # (B, t): the best satisfied beam (topk keeps them sorted)
    out = torch.cat([out, out.new_zeros(b, max_length - out.shape[1])], dim=1)
    attention = None
    if att is not None:
        attention = feats.new_zeros(b, max_length, r)
        attention[:, : att.shape[2]] = att[:, k]
        attention = attention.masked_fill((out == 0)[:, :, None], 0.0)
    return Decoded(out, attention), scores[:, k]


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
    required: Tensor | None = None,
) -> Decoded:
    """Dispatch on `method` (beam, greedy, sample). feats (B, R, D), mask (B, R) -> (B, max_length). With
    `required` word ids, the caption must hold one of them (beam only: constrained beam search)."""
    if required is not None:
        if method != "beam":
            raise ValueError(f"required words need method beam (constrained beam search), not {method!r}")
        return constrained_beam_search(model, feats, mask, beam_size, max_length, required)[0]
    if method == "beam":
        return beam_search(model, feats, mask, beam_size, max_length)[0]
    if method == "greedy":
        return greedy(model, feats, mask, max_length)
    if method == "sample":
        return sample(model, feats, mask, max_length, temperature, generator)
    raise ValueError(f"unknown decoding method {method!r} (beam, greedy or sample)")
