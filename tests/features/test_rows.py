"""check_rows: labels.h5 and regions.h5 rows are compared by image id, not only counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvsa.data.labels import Labels
from dvsa.errors import InputError
from dvsa.features import check_rows, without_skipped
from dvsa.regions.store import N_REGIONS, RegionStore, RegionWriter


def _labels(ids: list[object]) -> Labels:
    n = len(ids)
    return Labels(labels=np.ones((n, 3), np.uint32), label_start_ix=np.arange(1, n + 1, dtype=np.uint32),
                  label_end_ix=np.arange(1, n + 1, dtype=np.uint32), label_length=np.full(n, 3, np.uint32),
                  ix_to_word={1: "a"}, images=[{"split": "train", "id": i, "file_path": f"{k}.png"}
                                               for k, i in enumerate(ids)])


def _store(tmp_path: Path, ids: list[int]) -> RegionStore:
    n = len(ids)
    with RegionWriter(tmp_path / "regions.h5", n, 2, "float32") as w:
        w.append(np.zeros((n, N_REGIONS, 2)), np.zeros((n, N_REGIONS, 4)), np.zeros((n, N_REGIONS)), np.ones(n),
                 np.array(ids))
    return RegionStore(tmp_path / "regions.h5")


def test_same_ids_in_the_same_order_pass(tmp_path: Path) -> None:
    with _store(tmp_path, [1000, 7, 42]) as store:
        check_rows(_labels([1000, 7, 42]), store, "data/regions/regions.h5")


def test_the_first_mismatch_is_named_with_both_ids(tmp_path: Path) -> None:
    with _store(tmp_path, [1000, 42, 7, 5]) as store, pytest.raises(InputError) as e:
        check_rows(_labels([1000, 7, 42, 5]), store, "data/regions/regions.h5")
    assert str(e.value) == ("data/regions/regions.h5: row 1 is image id 42 but labels.h5 row 1 is image id 7 "
                            "(2 rows differ; rerun `dvc repro regions`)")


def test_counts_and_id_types(tmp_path: Path) -> None:
    with _store(tmp_path, [1, 2]) as store:
        with pytest.raises(InputError, match=r"^r.h5: 2 images but labels.h5 has 3 \(rerun `dvc repro regions`\)$"):
            check_rows(_labels([1, 2, 3]), store, "r.h5")
        with pytest.raises(InputError, match=r"^vocab.json: images\[1\].id must be an integer, got '2'"):
            check_rows(_labels([1, "2"]), store, "r.h5")


def test_the_alignment_stages_check_rows_by_id(tmp_path: Path) -> None:
    from dvsa.align.retrieval import check_inputs

    with _store(tmp_path, [3, 4]) as store, pytest.raises(InputError, match="row 0 is image id 3 but"):
        check_inputs(_labels([4, 3]), store, "regions.h5")


def test_skipped_images_leave_every_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = 4
    with RegionWriter(tmp_path / "regions.h5", n, 2, "float32") as w:  # image 2 was skipped: no regions
        w.append(np.zeros((n, N_REGIONS, 2)), np.zeros((n, N_REGIONS, 4)), np.zeros((n, N_REGIONS)),
                 np.array([1, 1, 0, 1]), np.array([10, 11, 12, 13]))
    labels = _labels([10, 11, 12, 13])
    with RegionStore(tmp_path / "regions.h5") as store:
        kept = without_skipped(labels, store)
    assert kept.split_indices("train").tolist() == [0, 1, 3]
    assert labels.split_indices("train").tolist() == [0, 1, 2, 3]  # the input is left as it was
    assert "1 skipped image(s) left out of every split" in capsys.readouterr().out
    with RegionStore(_store(tmp_path / "all", [10, 11, 12, 13]).path) as store:
        assert without_skipped(labels, store) is labels
