"""Embedding a whole split with a trained alignment model and scoring every image against every sentence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dvsa.align.model import AlignmentModel
from dvsa.align.ranking import annotation_chance, annotation_ranks, recall_summary, search_chance, search_ranks
from dvsa.align.score import image_sentence_scores
from dvsa.data.labels import Labels
from dvsa.data.rows import check_rows
from dvsa.errors import InputError
from dvsa.regions.store import RegionStore


def check_inputs(labels: Labels, store: RegionStore, regions_path: str = "regions.h5") -> None:
    """Rows of labels.h5 and regions.h5 must be the same images (by id), and each image needs a real region."""
    check_rows(labels, store, regions_path)
    if len(store.n_regions) and int(store.n_regions.min()) < 1:
        bad = int(np.argmin(store.n_regions))
        raise InputError(f"{regions_path}: image row {bad} has no region (region 0, the whole image, is required)")


def region_tensors(store: RegionStore, image_ix: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """feats (B, R, D) float32 and the real-region mask (B, R) of images `image_ix`."""
    return torch.from_numpy(store.feats(image_ix)), torch.from_numpy(store.mask(image_ix))


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
    model: AlignmentModel, store: RegionStore, image_ix: np.ndarray, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """v (K, R, h) and the region mask (K, R) of images `image_ix`, read from `store` a batch at a time
    (embedded on the model's device, returned on the CPU)."""
    vs, masks = [], []
    for start in range(0, len(image_ix), batch_size):
        feats, mask = region_tensors(store, image_ix[start : start + batch_size])
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
class Ranks:
    """The 1-based ranks behind Table 1's figures, kept for the per-image and per-sentence tables."""

    annotation: np.ndarray  # (K,) of each image: its best ground-truth sentence among all L sentences
    search: np.ndarray  # (L,) of each sentence: its own image among all K images
    sentence_image: np.ndarray  # (L,) position (0..K-1) of each sentence's image

    @classmethod
    def of(cls, scores: np.ndarray, sentence_image: np.ndarray) -> Ranks:
        """Both directions' ranks of the (K, L) image-sentence score matrix."""
        return cls(annotation_ranks(scores, sentence_image), search_ranks(scores, sentence_image), sentence_image)


def ranking_metrics(ranks: Ranks) -> dict[str, dict[str, float]]:
    """Table 1 figures for both directions, with the chance level of each beside it."""
    n_images = len(ranks.annotation)
    n_gt = np.bincount(ranks.sentence_image, minlength=n_images)
    return {
        "annotation": recall_summary(ranks.annotation),
        "annotation_chance": annotation_chance(n_gt, len(ranks.search)),
        "search": recall_summary(ranks.search),
        "search_chance": search_chance(n_images),
    }


def evaluate_split(
    model: AlignmentModel, labels: Labels, store: RegionStore, split: str, kind: str, batch_size: int
) -> dict[str, dict[str, float]]:
    """Ranking figures of `split` (every image against every sentence of the split)."""
    image_ix = labels.split_indices(split)
    if len(image_ix) == 0:
        raise InputError(f"labels.h5: the {split} split has no images")
    was_training = model.training
    model.eval()
    sents = split_sentences(labels, image_ix)
    v, rmask = embed_images(model, store, image_ix, batch_size)
    s, wmask = embed_sentences(model, sents.words, 10 * batch_size)
    scores = score_matrix(v, rmask, s, wmask, kind, batch_size)
    model.train(was_training)
    return ranking_metrics(Ranks.of(scores, sents.sentence_image))
