"""regions.h5: 20 regions per image (region 0 = the whole image), each with a CNN feature (docs/design.md,
"Files between stages").

Datasets: ``feats`` (N, R, D) float16/float32 chunked one image per chunk; ``boxes`` (N, R, 4) float32
xyxy in the original image's pixels; ``scores`` (N, R) float32; ``n_regions`` (N,) int32 (how many of the R
rows are real, the rest are zero padding; 0 for an image skipped as unreadable); ``image_id`` (N,) int64.
Row i is image i of dataset.json.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from dvsa.errors import InputError
from dvsa.io import atomic_path

N_REGIONS = 20


class RegionWriter:
    """Streams regions into a new regions.h5, written atomically: use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], n_images: int, dim: int, dtype: str = "float16") -> None:
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, got {dtype}")
        self.path, self.n_images, self.dim, self.dtype = Path(path), n_images, dim, dtype
        self._cursor = 0

    def __enter__(self) -> RegionWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._file = h5py.File(tmp, "w")
        n, r, d = self.n_images, N_REGIONS, self.dim
        f = self._file
        f.create_dataset("feats", (n, r, d), dtype=self.dtype, chunks=(1, r, d) if n else None)
        f.create_dataset("boxes", (n, r, 4), dtype="float32")
        f.create_dataset("scores", (n, r), dtype="float32")
        f.create_dataset("n_regions", (n,), dtype="int32")
        f.create_dataset("image_id", (n,), dtype="int64")
        return self

    def append(
        self,
        feats: np.ndarray,  # (B, R, D)
        boxes: np.ndarray,  # (B, R, 4)
        scores: np.ndarray,  # (B, R)
        n_regions: np.ndarray,  # (B,)
        image_id: np.ndarray,  # (B,)
    ) -> None:
        b = len(feats)
        s = slice(self._cursor, self._cursor + b)
        if s.stop > self.n_images:
            raise ValueError(f"{self.path}: more than the {self.n_images} images announced")
        f = self._file
        f["feats"][s] = feats
        f["boxes"][s] = boxes
        f["scores"][s] = scores
        f["n_regions"][s] = n_regions
        f["image_id"][s] = image_id
        self._cursor = s.stop

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()
        if exc is None and self._cursor != self.n_images:
            exc = ValueError(f"{self.path}: {self._cursor} of {self.n_images} images written")
            self._atomic.__exit__(type(exc), exc, None)
            raise exc
        self._atomic.__exit__(exc_type, exc, tb)


class RegionStore:
    """Random access to a regions.h5 without loading it: feats are read per batch."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: file not found (run `dvc repro regions`)")
        try:
            self._file = h5py.File(self.path, "r")
            self._feats = self._file["feats"]
            self.boxes: np.ndarray = self._file["boxes"][()]  # (N, R, 4)
            self.scores: np.ndarray = self._file["scores"][()]  # (N, R)
            self.n_regions: np.ndarray = self._file["n_regions"][()]  # (N,)
            self.image_id: np.ndarray = self._file["image_id"][()]  # (N,)
        except (OSError, KeyError) as e:
            raise InputError(f"{self.path}: not a regions file ({e})") from None

    def __len__(self) -> int:
        return int(self._feats.shape[0])

    @property
    def dim(self) -> int:
        return int(self._feats.shape[2])

    def feats(self, indices: np.ndarray | list[int], region: int | None = None) -> np.ndarray:
        """(B, R, D) float32 features of images `indices` (any order), or (B, D) of one `region`."""
        idx = np.asarray(indices, dtype=np.int64)
        uniq, inverse = np.unique(idx, return_inverse=True)
        shape = self._feats.shape[1:] if region is None else self._feats.shape[2:]
        block = np.empty((len(uniq),) + shape, dtype=self._feats.dtype)
        for j, i in enumerate(uniq.tolist()):  # one read per image (= one chunk): ~30x faster than a list index
            block[j] = self._feats[i] if region is None else self._feats[i, region]
        return block[inverse.reshape(-1)].astype(np.float32, copy=False)

    def usable(self) -> np.ndarray:
        """(N,) bool: rows with regions; False for images skipped as unreadable (``on_bad_image: skip``),
        which later stages leave out of training, evaluation and baselines."""
        return self.n_regions > 0

    def mask(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """(B, R) bool: which regions are real (not padding)."""
        n = self.n_regions[np.asarray(indices, dtype=np.int64)]
        return np.arange(self._feats.shape[1])[None, :] < n[:, None]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RegionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
