"""Retrieval with a trained alignment model: a whole split embedded, every image scored against every
sentence (eq. (8)), and the ranks of Table 1 (dvsa.metrics.ranking). ``retrieve_split`` is the one split
evaluation: the trainer's validation (``evaluate_split``) and the evaluate_alignment stage
(dvsa.align.evaluation) both call it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dvsa.align.model import AlignmentModel
from dvsa.align.score import image_sentence_scores
from dvsa.data.labels import Labels
from dvsa.errors import InputError
from dvsa.features import CachedFeatures, FeatureSource, check_rows
from dvsa.metrics.ranking import Ranks, ranking_metrics
from dvsa.regions.store import RegionStore


def check_inputs(labels: Labels, store: RegionStore, regions_path: str = "regions.h5") -> None:
    """Rows of labels.h5 and regions.h5 must be the same images (by id), and each image needs a real region."""
    check_rows(labels, store, regions_path)
    if len(store.n_regions) and int(store.n_regions.min()) < 1:
        bad = int(np.argmin(store.n_regions))
        raise InputError(f"{regions_path}: image row {bad} has no region (region 0, the whole image, is required)")


def fc7_source(store_or_source: RegionStore | FeatureSource) -> FeatureSource:
    """What the alignment model reads: the fc7 features of regions.h5 without geometry (or a given source)."""
    if isinstance(store_or_source, RegionStore):
        return CachedFeatures(store_or_source, geometry=False)
    return store_or_source


def trim(words: np.ndarray) -> torch.Tensor:
    """(B, L) 0-padded word indices -> int64 tensor cut to the longest sentence in the batch (at least 1)."""
    t = max(1, int((words > 0).sum(axis=1).max(initial=0)))
    return torch.from_numpy(np.ascontiguousarray(words[:, :t], dtype=np.int64))


@dataclass
class SplitSentences:
    """All sentences of a split's images, in image order."""

    words: np.ndarray  # (L, max_length) int64, 0-padded
    sentence_image: np.ndarray  # (L,) position (0..K-1) of each sentence's image in the split


def split_sentences(labels: Labels, image_ix: np.ndarray) -> SplitSentences:
    """Every caption of every image in `image_ix` (the paper's test protocol uses all 5 per image)."""
    rows, owner = [], []
    for k, i in enumerate(image_ix.tolist()):
        first, last = int(labels.label_start_ix[i]) - 1, int(labels.label_end_ix[i])
        rows.append(np.arange(first, last))
        owner.append(np.full(last - first, k))
    flat = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return SplitSentences(
        words=labels.labels[flat].astype(np.int64),
        sentence_image=np.concatenate(owner).astype(np.int64) if owner else np.zeros(0, dtype=np.int64),
    )


@torch.no_grad()
def embed_images(
    model: AlignmentModel, store_or_source: RegionStore | FeatureSource, image_ix: np.ndarray, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """v (K, R, h) and the region mask (K, R) of images `image_ix`, read from regions.h5 (or a feature source)
    a batch at a time (embedded on the model's device, returned on the CPU)."""
    source = fc7_source(store_or_source)
    vs, masks = [], []
    for start in range(0, len(image_ix), batch_size):
        feats, mask = source(image_ix[start : start + batch_size])
        vs.append(model.embed_images(feats, mask).cpu())
        masks.append(mask)
    return torch.cat(vs), torch.cat(masks)


@torch.no_grad()
def embed_sentences(model: AlignmentModel, words: np.ndarray, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """s (L, T, h) and the word mask (L, T), T = the longest sentence (on the CPU)."""
    t = trim(words).shape[1]
    ss, masks = [], []
    for start in range(0, len(words), batch_size):
        s, mask = model.embed_sentences(torch.from_numpy(words[start : start + batch_size, :t]))
        ss.append(s.cpu())
        masks.append(mask.cpu())
    return torch.cat(ss), torch.cat(masks)


@torch.no_grad()
def score_matrix(
    v: torch.Tensor, region_mask: torch.Tensor, s: torch.Tensor, word_mask: torch.Tensor, kind: str, block: int
) -> np.ndarray:
    """(K, L) S_kl of eq. (8) (or (7)) for all images and sentences, computed `block` images at a time."""
    out = [
        image_sentence_scores(v[a : a + block], region_mask[a : a + block], s, word_mask, kind).numpy()
        for a in range(0, v.shape[0], block)
    ]
    return np.concatenate(out) if out else np.zeros((0, s.shape[0]), dtype=np.float32)


@dataclass
class SplitRetrieval:
    """A split embedded and scored: what the ranks are computed from, kept for the snippets (eqs. (10)-(12))."""

    image_ix: np.ndarray  # (K,) the split's rows of labels.h5 / regions.h5
    sentences: SplitSentences  # (L,) every sentence of those images
    v: torch.Tensor  # (K, R, h) region embeddings
    region_mask: torch.Tensor  # (K, R)
    s: torch.Tensor  # (L, T, h) word embeddings
    word_mask: torch.Tensor  # (L, T)
    ranks: Ranks  # of the (K, L) score matrix S_kl


@torch.no_grad()
def retrieve_split(
    model: AlignmentModel,
    labels: Labels,
    store_or_source: RegionStore | FeatureSource,
    split: str,
    kind: str,
    batch_size: int,
) -> SplitRetrieval:
    """Every image of `split` ranked against every sentence of the split (scores of eq. (8), or (7) for
    `kind`), in eval mode; the model's train / eval mode is restored after."""
    image_ix = labels.split_indices(split)
    if len(image_ix) == 0:
        raise InputError(f"labels.h5: the {split} split has no images")
    was_training = model.training
    model.eval()
    sents = split_sentences(labels, image_ix)
    v, rmask = embed_images(model, store_or_source, image_ix, batch_size)  # (K, R, h), (K, R)
    s, wmask = embed_sentences(model, sents.words, 10 * batch_size)  # (L, T, h), (L, T)
    scores = score_matrix(v, rmask, s, wmask, kind, batch_size)  # (K, L)
    model.train(was_training)
    return SplitRetrieval(image_ix, sents, v, rmask, s, wmask, Ranks.of(scores, sents.sentence_image))


def evaluate_split(
    model: AlignmentModel,
    labels: Labels,
    store_or_source: RegionStore | FeatureSource,
    split: str,
    kind: str,
    batch_size: int,
) -> dict[str, dict[str, float]]:
    """Ranking figures of `split` (every image against every sentence of the split): the trainer's validation."""
    return ranking_metrics(retrieve_split(model, labels, store_or_source, split, kind, batch_size).ranks)
