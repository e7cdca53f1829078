from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvsa.errors import InputError
from dvsa.regions.store import N_REGIONS, RegionStore, RegionWriter


def test_write_then_read_any_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(5, N_REGIONS, 8)).astype(np.float32)
    path = tmp_path / "regions.h5"
    with RegionWriter(path, 5, 8, "float32") as w:
        for s in (slice(0, 2), slice(2, 5)):
            n = len(feats[s])
            w.append(feats[s], np.zeros((n, N_REGIONS, 4)), np.ones((n, N_REGIONS)), np.array([3] * n), np.arange(n))
    with RegionStore(path) as store:
        assert len(store) == 5 and store.dim == 8
        np.testing.assert_array_equal(store.feats([4, 1, 1]), feats[[4, 1, 1]])
        np.testing.assert_array_equal(store.feats([3, 0], region=0), feats[[3, 0], 0])
        assert store.mask([0]).sum() == 3


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "regions.h5"
    with pytest.raises(ValueError, match="1 of 2 images written"):
        with RegionWriter(path, 2, 4) as w:
            w.append(
                np.zeros((1, N_REGIONS, 4)),
                np.zeros((1, N_REGIONS, 4)),
                np.zeros((1, N_REGIONS)),
                np.ones(1),
                np.ones(1),
            )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="regions.h5: file not found"):
        RegionStore(path)
