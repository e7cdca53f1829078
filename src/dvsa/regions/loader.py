"""Images decoded and resized for the region CNN in DataLoader worker processes, while the model runs.

Each item is one image as uint8 network pixels (a quarter of the float bytes through shared memory), in
dataset order; an unreadable image is an item with its one-line error instead of pixels, so that the
caller decides whether to stop or skip it.
"""

from __future__ import annotations

import ctypes
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from dvsa.data.images import load_rgb
from dvsa.errors import InputError
from dvsa.regions.model import to_uint8

Sizer = Callable[[int, int], tuple[int, int]]  # original (W, H) -> network (w, h)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _silent_on_lost_reader(kind: type[BaseException], value: BaseException, tb: object) -> None:
    """sys.excepthook of a worker: a ConnectionError means the process reading its images is gone (a
    killed rank; multiprocessing's fd-sharing thread reports it here), which the launcher already reports
    in one line; anything else keeps Python's traceback."""
    if not issubclass(kind, ConnectionError):
        sys.__excepthook__(kind, value, tb)  # type: ignore[arg-type]


def quiet_orphan(_worker_id: int = 0) -> None:
    """DataLoader worker_init_fn: the worker dies with the process it feeds (Linux: SIGKILL on the parent's
    death) and prints no traceback when that process is gone, so that a killed rank stops the stage with
    the launcher's one line only."""
    sys.excepthook = _silent_on_lost_reader
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


@dataclass
class LoadedImage:
    index: int  # row in the dataset
    pixels: torch.Tensor | None  # (3, h, w) uint8 network pixels; None when the image is unreadable
    size: tuple[int, int]  # original (W, H)
    error: str  # one line naming the file, when unreadable

    def pin_memory(self) -> LoadedImage:
        return self if self.pixels is None else replace(self, pixels=self.pixels.pin_memory())


class ImageFiles(Dataset[LoadedImage]):
    def __init__(self, paths: Sequence[Path], indices: Sequence[int], sizer: Sizer) -> None:
        self.paths, self.indices, self.sizer = paths, list(indices), sizer

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> LoadedImage:
        i = self.indices[k]
        try:
            image = load_rgb(self.paths[i])
        except InputError as e:
            return LoadedImage(i, None, (0, 0), str(e))
        return LoadedImage(i, to_uint8(image, *self.sizer(*image.size)), image.size, "")


def load_images(
    paths: Sequence[Path], indices: Sequence[int], sizer: Sizer, workers: int, pin_memory: bool
) -> Iterator[LoadedImage]:
    """Images `indices` of `paths`, in that order, decoded by `workers` processes (0: in this one)."""
    files = ImageFiles(paths, indices, sizer)
    if workers == 0:
        yield from (files[k] for k in range(len(files)))
        return
    loader = DataLoader(
        files, batch_size=None, num_workers=workers, pin_memory=pin_memory, prefetch_factor=4, persistent_workers=False,
        worker_init_fn=quiet_orphan,
    )
    yield from loader
