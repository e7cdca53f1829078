"""Row i of labels.h5 / vocab.json and row i of regions.h5 must be the same image (docs/design.md, "Files
between stages"): the labels x regions join.

Both files name an image by the same id: the dataset's ``cocoid`` when it has one, else its ``imgid``
(vocab.json ``images[i].id`` from dvsa.data.prepro, regions.h5 ``image_id[i]`` from dvsa.regions.data).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dvsa.data.labels import Labels
from dvsa.errors import InputError
from dvsa.regions.store import RegionStore


def label_image_ids(labels: Labels, where: str = "vocab.json") -> np.ndarray:
    """(N,) int64 ids of vocab.json's images, in row order; a non-integer id is an InputError."""
    ids = [im.get("id") for im in labels.images]
    for i, image_id in enumerate(ids):
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise InputError(f"{where}: images[{i}].id must be an integer, got {image_id!r} (rerun `dvc repro preprocess`)")
    return np.array(ids, dtype=np.int64)


def check_rows(labels: Labels, store: RegionStore, where: str = "regions.h5") -> None:
    """Raise an InputError naming the first row where regions.h5 (`where`) and labels.h5 hold different images."""
    ids = label_image_ids(labels)
    if len(store) != len(ids):
        raise InputError(f"{where}: {len(store)} images but labels.h5 has {len(ids)} (rerun `dvc repro regions`)")
    bad = np.flatnonzero(store.image_id != ids)
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{where}: row {i} is image id {int(store.image_id[i])} but labels.h5 row {i} is image id {int(ids[i])} "
            f"({len(bad)} rows differ; rerun `dvc repro regions`)"
        )


SKIPPED = "skipped"  # the split of an image that regions.h5 has no regions for


def without_skipped(labels: Labels, store: RegionStore) -> Labels:
    """`labels` with the images regions.h5 skipped as unreadable (``regions.on_bad_image: skip``, n_regions 0)
    moved out of their split, so that training, evaluation and baselines all leave them out alike."""
    check_rows(labels, store, str(store.path))
    skipped = set(np.flatnonzero(~store.usable()).tolist())
    if not skipped:
        return labels
    print(f"{store.path}: {len(skipped)} skipped image(s) left out of every split")
    images = [{**im, "split": SKIPPED} if i in skipped else im for i, im in enumerate(labels.images)]
    return dataclasses.replace(labels, images=images)
