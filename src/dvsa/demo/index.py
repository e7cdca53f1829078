"""The Search tab's index: a split's images and sentences embedded once by the alignment model and cached on
disk, keyed by the model file's digest (and the data files'), so that a query is one sentence (or image)
embedded and a matrix product against the cache (eq. (8) via dvsa.align.score, as dvsa.align.retrieval)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dvsa.align.model import AlignmentModel
from dvsa.align.retrieval import embed_images, embed_sentences, score_matrix, split_sentences
from dvsa.checkpoint import FORMAT, read, save
from dvsa.data.labels import Labels
from dvsa.errors import InputError
from dvsa.hashing import file_digest, record_digest, stat_digest
from dvsa.regions.store import RegionStore

CACHE_FORMAT = "dvsa.demo.index/1"


@dataclass
class SearchIndex:
    """A split embedded by the alignment model: v_i of its images' regions, s_t of its sentences' words."""

    split: str
    kind: str  # the model's score: "max" (eq. (8)) or "sum" (eq. (7))
    image_rows: np.ndarray  # (K,) the split's rows of labels.h5 / regions.h5
    v: torch.Tensor  # (K, R, h) region embeddings
    region_mask: torch.Tensor  # (K, R)
    words: np.ndarray  # (L, max_length) the split's sentences, 0-padded
    sentence_image: np.ndarray  # (L,) position (0..K-1) of each sentence's image
    s: torch.Tensor  # (L, T, h) word embeddings
    word_mask: torch.Tensor  # (L, T)

    def image_scores(self, s: torch.Tensor, word_mask: torch.Tensor) -> np.ndarray:
        """(K,) S_kl of every image with one sentence: s (1, T, h), word_mask (1, T)."""
        return score_matrix(self.v, self.region_mask, s, word_mask, self.kind, len(self.image_rows))[:, 0]

    def sentence_scores(self, v: torch.Tensor, region_mask: torch.Tensor) -> np.ndarray:
        """(L,) S_kl of one image with every sentence: v (1, R, h), region_mask (1, R)."""
        return score_matrix(v, region_mask, self.s, self.word_mask, self.kind, 1)[0]


def top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, best first (ties in position order)."""
    return np.argsort(-scores, kind="stable")[:k]


def cache_key(model_path: Path, labels_path: Path, regions_path: Path, split: str) -> str:
    """What the cached embeddings depend on: the model file's content, the data files' stat (regions.h5 can
    be gigabytes), the split and the cache format."""
    return record_digest({
        "format": CACHE_FORMAT,
        "model": file_digest(model_path),
        "data": stat_digest([labels_path, regions_path], [0, 1]),
        "split": split,
    })


@torch.no_grad()
def build_index(
    model: AlignmentModel, kind: str, labels: Labels, store: RegionStore, split: str, batch_size: int = 100
) -> SearchIndex:
    """Embed every image and sentence of `split` (the embeddings of dvsa.align.retrieval.retrieve_split)."""
    image_ix = labels.split_indices(split)
    if len(image_ix) == 0:
        raise InputError(f"labels.h5: the {split} split has no images")
    sents = split_sentences(labels, image_ix)
    v, rmask = embed_images(model, store, image_ix, batch_size)  # (K, R, h), (K, R)
    s, wmask = embed_sentences(model, sents.words, 10 * batch_size)  # (L, T, h), (L, T)
    return SearchIndex(split, kind, image_ix, v, rmask, sents.words, sents.sentence_image, s, wmask)


def load_or_build(
    model: AlignmentModel,
    kind: str,
    labels: Labels,
    store: RegionStore,
    split: str,
    paths: tuple[Path, Path, Path],
    cache_dir: str | os.PathLike[str],
) -> tuple[SearchIndex, bool]:
    """The index of `split` from `cache_dir` when its key (model, labels, regions paths) matches, else built
    and written there; returns (index, whether it was built)."""
    path = Path(cache_dir) / f"{split}-{cache_key(*paths, split)}.pt"
    data = read(path, CACHE_FORMAT) if path.is_file() else None
    if isinstance(data, dict):
        try:
            fields = {k: v for k, v in data.items() if k != FORMAT}
            return SearchIndex(**{**fields, "image_rows": data["image_rows"].numpy(), "words": data["words"].numpy(),
                                  "sentence_image": data["sentence_image"].numpy()}), False
        except (KeyError, TypeError, AttributeError):  # another layout: rebuilt, never trusted
            pass
    path.unlink(missing_ok=True)
    index = build_index(model, kind, labels, store, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(path, CACHE_FORMAT, {
        "split": index.split, "kind": index.kind, "image_rows": torch.from_numpy(index.image_rows),
        "v": index.v, "region_mask": index.region_mask, "words": torch.from_numpy(index.words),
        "sentence_image": torch.from_numpy(index.sentence_image), "s": index.s, "word_mask": index.word_mask,
    })
    for stale in path.parent.glob(f"{split}-*.pt"):  # the caches of other model files
        if stale != path:
            stale.unlink()
    return index, True
