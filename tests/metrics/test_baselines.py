from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvsa.metrics.baselines import consensus_caption
from dvsa.metrics.neighbours import nearest_neighbours
from dvsa.regions.store import N_REGIONS, RegionStore, RegionWriter


def store_with(tmp_path: Path, region0: np.ndarray) -> RegionStore:
    n, d = region0.shape
    feats = np.random.default_rng(0).normal(size=(n, N_REGIONS, d)).astype(np.float32)  # other regions: noise
    feats[:, 0] = region0
    with RegionWriter(tmp_path / "r.h5", n, d, "float32") as w:
        w.append(feats, np.zeros((n, N_REGIONS, 4)), np.zeros((n, N_REGIONS)), np.full(n, N_REGIONS), np.arange(n))
    return RegionStore(tmp_path / "r.h5")


def nearest_images(store: RegionStore, queries: list[int] | np.ndarray, pool: list[int] | np.ndarray,
                   chunk: int = 1024) -> np.ndarray:
    """The search as the caption baseline runs it: region 0 of images."""
    return nearest_neighbours(store.feats(np.asarray(queries), region=0), np.asarray(pool),
                              lambda r: store.feats(r, region=0), chunk=chunk)


def test_nearest_by_cosine_not_by_distance(tmp_path: Path) -> None:
    region0 = np.array(
        [
            [1.0, 0.0, 0.0],  # 0 query
            [0.0, 1.0, 0.0],  # 1 query
            [10.0, 1.0, 0.0],  # 2: same direction as query 0, far in euclidean distance
            [0.7, 0.7, 0.0],  # 3: closer to query 0 in euclidean distance, larger angle
            [0.1, 3.0, 0.2],  # 4: nearest to query 1
        ],
        dtype=np.float32,
    )
    with store_with(tmp_path, region0) as store:
        assert list(nearest_images(store, [0, 1], [2, 3, 4])) == [2, 4]


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_matches_brute_force_whatever_the_chunk(tmp_path: Path, chunk: int) -> None:
    rng = np.random.default_rng(1)
    region0 = rng.normal(size=(40, 8)).astype(np.float32)
    with store_with(tmp_path, region0) as store:
        queries, pool = np.arange(30, 40), np.arange(0, 30)
        unit = region0 / np.linalg.norm(region0, axis=1, keepdims=True)
        expected = pool[(unit[queries] @ unit[pool].T).argmax(1)]
        assert np.array_equal(nearest_images(store, queries, pool, chunk=chunk), expected)


def test_consensus_caption_agrees_most_with_the_others() -> None:
    caps = ["There are three objects.", "The red circle over the blue square.", "A red circle above a blue square.",
            "A red circle above the blue square.", "Dogs."]
    assert consensus_caption(caps) == 3  # shares most with both 1 and 2
    assert consensus_caption(["only one"]) == 0
