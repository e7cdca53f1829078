"""Captions and perplexity for rows of regions.h5, streamed in batches (memory does not grow with N)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from dvsa.caption.beam import decode_batch
from dvsa.caption.model import Captioner, language_model_criterion
from dvsa.data.labels import Labels
from dvsa.features import FeatureSource


@dataclass
class Captions:
    seqs: np.ndarray  # (N, T) int64 words, 0 after END
    attention: np.ndarray | None  # (N, T, R) float32: the attention of the step that emitted each word


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def caption_rows(
    model: Captioner,
    source: FeatureSource,
    rows: Sequence[int] | np.ndarray,
    method: str = "beam",
    max_length: int = 16,
    beam_size: int = 3,
    temperature: float = 1.0,
    batch_size: int = 50,
    seed: int = 0,
    progress: bool = False,
    required: Sequence[int] | None = None,
) -> Captions:
    """Word sequences for rows `rows` of the dataset, decoded from their region features; with `required`
    word ids, each caption holds one of them (dvsa.caption.beam.constrained_beam_search)."""
    model.eval()
    device = model_device(model)
    rows = np.asarray(rows, dtype=np.int64)
    seqs = np.zeros((len(rows), max_length), dtype=np.int64)
    attention = None
    generator = torch.Generator(device=device).manual_seed(seed)
    must = None if required is None else torch.tensor(list(required), dtype=torch.long, device=device)
    starts = range(0, len(rows), batch_size)
    for s in tqdm(starts, desc=f"caption ({method})", unit="batch", disable=not progress):
        with torch.no_grad():
            feats, mask = source(rows[s : s + batch_size])  # (B, R, D), (B, R)
        feats, mask = feats.to(device), mask.to(device)
        out = decode_batch(model, feats, mask, method, max_length, beam_size, temperature, generator, must)
        seqs[s : s + len(feats)] = out.seqs.cpu().numpy()
        if out.attention is not None:
            if attention is None:
                attention = np.zeros((len(rows), max_length, feats.shape[1]), dtype=np.float32)
            attention[s : s + len(feats)] = out.attention.cpu().numpy()
    return Captions(seqs, attention)


@torch.no_grad()
def perplexity(
    model: Captioner, source: FeatureSource, labels: Labels, rows: Sequence[int], batch_size: int = 50
) -> float:
    """exp of the mean per-token negative log-likelihood (words and END) of every caption of `rows`."""
    model.eval()
    device = model_device(model)
    total, tokens = 0.0, 0
    rows = np.asarray(rows, dtype=np.int64)
    for s in range(0, len(rows), batch_size):
        chunk = rows[s : s + batch_size]
        feats, mask = source(chunk)  # (B, R, D), (B, R)
        feats, mask = feats.to(device), mask.to(device)
        owner = torch.from_numpy(
            np.concatenate([np.full(len(labels.captions(int(i))), k) for k, i in enumerate(chunk)])
        )
        caps = torch.from_numpy(np.concatenate([labels.captions(int(i)) for i in chunk]).astype(np.int64))  # (M, L)
        caps = caps[:, : max(int((caps > 0).sum(1).max()), 1)]
        owner, caps = owner.to(device), caps.to(device)
        logprobs = model(feats[owner], mask[owner], caps, seq_per_img=1)  # (M, L + 1, V + 1)
        n = int(((caps > 0).sum(1) + 1).sum())
        total += float(language_model_criterion(logprobs, caps)) * n
        tokens += n
    return math.exp(total / tokens)
