"""Captions and perplexity for rows of regions.h5, streamed in batches (memory does not grow with N)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from dvsa.caption.decode import decode_batch
from dvsa.caption.model import Captioner, language_model_criterion
from dvsa.data.labels import Labels
from dvsa.regions.store import RegionStore


def caption_rows(
    model: Captioner,
    store: RegionStore,
    rows: Sequence[int] | np.ndarray,
    method: str = "beam",
    max_length: int = 16,
    beam_size: int = 3,
    temperature: float = 1.0,
    batch_size: int = 50,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """(N, max_length) int64 word sequences for regions.h5 rows `rows`, from their region-0 feature."""
    model.eval()
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((len(rows), max_length), dtype=np.int64)
    generator = torch.Generator().manual_seed(seed)
    starts = range(0, len(rows), batch_size)
    for s in tqdm(starts, desc=f"caption ({method})", unit="batch", disable=not progress):
        feats = torch.from_numpy(store.feats(rows[s : s + batch_size], region=0))  # (B, D)
        out[s : s + len(feats)] = decode_batch(
            model, feats, method, max_length, beam_size, temperature, generator
        ).numpy()
    return out


@torch.no_grad()
def perplexity(model: Captioner, store: RegionStore, labels: Labels, rows: Sequence[int], batch_size: int = 50) -> float:
    """exp of the mean per-token negative log-likelihood (words and END) of every caption of `rows`."""
    model.eval()
    total, tokens = 0.0, 0
    rows = np.asarray(rows, dtype=np.int64)
    for s in range(0, len(rows), batch_size):
        chunk = rows[s : s + batch_size]
        feats = torch.from_numpy(store.feats(chunk, region=0))  # (B, D)
        owner = np.concatenate([np.full(len(labels.captions(int(i))), k) for k, i in enumerate(chunk)])  # (M,)
        caps = torch.from_numpy(np.concatenate([labels.captions(int(i)) for i in chunk]).astype(np.int64))  # (M, L)
        caps = caps[:, : max(int((caps > 0).sum(1).max()), 1)]
        logprobs = model(feats[torch.from_numpy(owner)], caps, seq_per_img=1)  # (M, L + 1, V + 1)
        n = int(((caps > 0).sum(1) + 1).sum())
        total += float(language_model_criterion(logprobs, caps)) * n
        tokens += n
    return math.exp(total / tokens)
