"""The nearest-neighbour baseline draws its captions from training images only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvsa.data.labels import Labels
from dvsa.errors import InputError
from dvsa.metrics.baselines import nearest_neighbour_captions
from tests.metrics.test_baselines import store_with

SPLITS = ["train", "val", "test", "train", "test"]


def _labels(splits: list[str]) -> Labels:
    n = len(splits)
    return Labels(labels=np.ones((n, 2), np.uint32), label_start_ix=np.arange(1, n + 1, dtype=np.uint32),
                  label_end_ix=np.arange(1, n + 1, dtype=np.uint32), label_length=np.full(n, 2, np.uint32),
                  ix_to_word={1: "a"}, images=[{"split": s, "id": i, "file_path": ""} for i, s in enumerate(splits)])


def _dataset(n: int) -> dict:
    return {"images": [{"sentences": [{"raw": f"image {i} caption"}] * 2} for i in range(n)]}


def test_neighbours_come_from_train_only(tmp_path: Path) -> None:
    region0 = np.array([[1, 0, 0], [0, 1, 0], [0, 0.9, 0.1], [0, 0.2, 1], [0, 1, 0.01]], dtype=np.float32)
    # test image 2 is nearest to val image 1 and test image 4; of the train images, to image 3
    with store_with(tmp_path, region0) as store:
        got = nearest_neighbour_captions(_labels(SPLITS), store, _dataset(5), [2, 4])
    assert got == ["image 3 caption", "image 3 caption"]  # never itself (4), the val image (1) or the other test one


def test_no_training_image_is_one_line(tmp_path: Path) -> None:
    with store_with(tmp_path, np.eye(3, dtype=np.float32)) as store, pytest.raises(InputError, match="no images in the train"):
        nearest_neighbour_captions(_labels(["val", "test", "test"]), store, _dataset(3), [1, 2])
