"""Resumable extraction: the `regions` stage's finished work, kept as shard files in a work folder.

Shard k holds the regions of images [k * shard_size, (k + 1) * shard_size) and is written atomically when
all of them are done, so a kill, an out-of-memory or a bad image loses at most one shard. The folder's
manifest.json records a key of everything that decides the shards' bits (:func:`manifest_key`: the model file,
the params, the images, the code, the device); a rerun with the same key keeps the finished shards, any other
empties the folder first. Under torchrun the ranks write their shards into the one folder (rank 0 opens it
first, see dvsa.regions.extract.open_shards). regions.h5 is assembled from the shards (atomically) only when
all are done, so DVC never sees a partial one; then the folder is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torchvision

from dvsa.errors import InputError
from dvsa.hashing import code_digest, file_digest, record_digest, stat_digest
from dvsa.io import atomic_path, read_json, write_json
from dvsa.regions.config import RegionsParams
from dvsa.regions.data import ImageRecord
from dvsa.regions.store import RegionWriter

MANIFEST = "manifest.json"


@dataclass
class Shard:
    """Regions of consecutive images (rows start..start + len - 1 of regions.h5)."""

    start: int
    feats: np.ndarray  # (B, R, D) float32 or float16
    boxes: np.ndarray  # (B, R, 4) float32
    scores: np.ndarray  # (B, R) float32
    n_regions: np.ndarray  # (B,) int32; 0 for a skipped image
    image_id: np.ndarray  # (B,) int64
    skipped: list[dict[str, Any]]  # {"index", "path", "error"} of the images left out


# the params of section `regions` that decide the shards (the rest only train the region CNN, whose file is hashed)
SHARD_PARAMS = ("detect", "batch_size", "feats_dtype", "shard_size", "on_bad_image")
# the modules that compute a shard: the extraction and the loading of every kind of region CNN (with the dvsa
# modules they import; dvsa.hashing.code_digest)
SHARD_CODE = ("dvsa.regions.extract", "dvsa.regions.checkpoint")


def manifest_key(
    params: RegionsParams,
    model_file: str | os.PathLike[str],
    records: Sequence[ImageRecord],
    device: torch.device,
    amp: torch.dtype | None,
) -> str:
    """The key of a run's shards: everything that decides their bits, and nothing else. Not the world size: a
    shard's bits do not depend on it (see dvsa.regions.extract.write_regions), so a rerun with another
    compute.nproc keeps the finished shards. The images by path, id, size and time, not their pixels (COCO is
    20 GB)."""
    return record_digest(
        {
            "model": file_digest(model_file),
            "params": {k: v for k, v in asdict(params).items() if k in SHARD_PARAMS},
            "images": stat_digest([r.path for r in records], [r.image_id for r in records]),
            "code": code_digest(*SHARD_CODE),
            "device": device.type,
            "amp": str(amp),
            "versions": [torch.__version__, torchvision.__version__, sys.version],
        }
    )


class ShardFolder:
    def __init__(
        self, folder: str | os.PathLike[str], key: str, n_images: int, shard_size: int, *, create: bool = True
    ) -> None:
        """Open the work folder for a run identified by `key` (see :func:`manifest_key`). With `create` (a run of
        one process, or rank 0) a folder left by a run with another key is emptied; without (the other ranks of
        a torchrun run, once rank 0 has opened it) the folder must be this run's: a rank that computes another
        key (a node with other code, images or versions) stops rather than mix its shards in."""
        self.folder, self.n_images, self.shard_size = Path(folder), n_images, shard_size
        manifest = self.folder / MANIFEST
        current = manifest.is_file() and read_json(manifest).get("key") == key
        if not create and not current:
            raise InputError(
                f"{manifest}: rank 0 opened the work folder for other inputs than this rank's (model, params, "
                "images, code or versions differ between the nodes); every node needs the same project and software"
            )
        if self.folder.exists() and not current:
            shutil.rmtree(self.folder)
        if not manifest.is_file():
            write_json(manifest, {"key": key, "n_images": n_images, "shard_size": shard_size})

    @property
    def n_shards(self) -> int:
        return -(-self.n_images // self.shard_size)

    def rows(self, k: int) -> range:
        return range(k * self.shard_size, min((k + 1) * self.shard_size, self.n_images))

    def path(self, k: int) -> Path:
        return self.folder / f"shard-{k:06d}.h5"

    def done(self, k: int) -> bool:
        return self.path(k).is_file()

    def write(self, k: int, shard: Shard) -> None:
        with atomic_path(self.path(k)) as tmp, h5py.File(tmp, "w") as f:
            for name in ("feats", "boxes", "scores", "n_regions", "image_id"):
                f.create_dataset(name, data=getattr(shard, name))
            f.attrs["start"] = shard.start
            f.attrs["skipped"] = json.dumps(shard.skipped)

    def read(self, k: int) -> Shard:
        with h5py.File(self.path(k), "r") as f:
            arrays = {name: f[name][()] for name in ("feats", "boxes", "scores", "n_regions", "image_id")}
            return Shard(int(f.attrs["start"]), skipped=json.loads(f.attrs["skipped"]), **arrays)

    def assemble(self, out_path: str | os.PathLike[str], dim: int, dtype: str) -> list[Shard]:
        """Write regions.h5 (atomically) from all the shards, in order; return them without their features."""
        shards = []
        with RegionWriter(out_path, self.n_images, dim, dtype) as writer:
            for k in range(self.n_shards):
                s = self.read(k)
                writer.append(s.feats, s.boxes, s.scores, s.n_regions, s.image_id)
                s.feats = np.empty((0, *s.feats.shape[1:]), s.feats.dtype)  # not a view: the features are freed
                shards.append(s)
        return shards

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
