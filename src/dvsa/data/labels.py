"""labels.h5 + vocab.json in neuraltalk2's prepro.py format (docs/design.md, "Files between stages").

labels.h5: ``labels`` uint32 (M, max_length) zero-padded; ``label_start_ix`` / ``label_end_ix`` uint32
(N,), 1-indexed and inclusive; ``label_length`` uint32 (M,).
vocab.json: ``{"ix_to_word": {"1": word, ...}, "images": [{"split", "id", "file_path"}, ...]}``.
Row i of every per-image array is image i of dataset.json (and of regions.h5).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dvsa.errors import InputError
from dvsa.io import atomic_path, read_json, write_json


@dataclass
class Labels:
    """The contents of labels.h5 (arrays) and vocab.json."""

    labels: np.ndarray  # (M, L) uint32
    label_start_ix: np.ndarray  # (N,) uint32, 1-indexed
    label_end_ix: np.ndarray  # (N,) uint32, 1-indexed inclusive
    label_length: np.ndarray  # (M,) uint32
    ix_to_word: dict[int, str]
    images: list[dict[str, Any]]

    @property
    def vocab_size(self) -> int:
        return len(self.ix_to_word)

    @property
    def max_length(self) -> int:
        return int(self.labels.shape[1])

    def captions(self, i: int) -> np.ndarray:
        """(k, L) the captions of image i."""
        return self.labels[int(self.label_start_ix[i]) - 1 : int(self.label_end_ix[i])]

    def split_indices(self, split: str) -> np.ndarray:
        """Indices of the images in `split` (train / val / test)."""
        return np.array([i for i, im in enumerate(self.images) if im["split"] == split], dtype=np.int64)


def write_labels(h5_path: str | os.PathLike[str], vocab_path: str | os.PathLike[str], labels: Labels) -> None:
    """Write labels.h5 and vocab.json atomically."""
    with atomic_path(h5_path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("labels", data=labels.labels.astype(np.uint32))
            f.create_dataset("label_start_ix", data=labels.label_start_ix.astype(np.uint32))
            f.create_dataset("label_end_ix", data=labels.label_end_ix.astype(np.uint32))
            f.create_dataset("label_length", data=labels.label_length.astype(np.uint32))
    write_json(vocab_path, {"ix_to_word": {str(k): w for k, w in labels.ix_to_word.items()}, "images": labels.images})


def read_labels(h5_path: str | os.PathLike[str], vocab_path: str | os.PathLike[str]) -> Labels:
    """Read labels.h5 + vocab.json; missing or inconsistent files are InputErrors naming them."""
    vocab = read_json(vocab_path)
    if not isinstance(vocab, dict) or "ix_to_word" not in vocab or "images" not in vocab:
        raise InputError(f"{vocab_path}: expected keys 'ix_to_word' and 'images'")
    p = Path(h5_path)
    if not p.is_file():
        raise InputError(f"{p}: file not found (run `dvc repro preprocess`)")
    try:
        with h5py.File(p, "r") as f:
            arrays = {k: f[k][()] for k in ("labels", "label_start_ix", "label_end_ix", "label_length")}
    except (OSError, KeyError) as e:
        raise InputError(f"{p}: not a labels file ({e})") from None
    out = Labels(
        ix_to_word={int(k): w for k, w in vocab["ix_to_word"].items()}, images=vocab["images"], **arrays
    )
    if len(out.label_start_ix) != len(out.images):
        raise InputError(f"{p}: {len(out.label_start_ix)} images but {vocab_path} lists {len(out.images)}")
    return out
