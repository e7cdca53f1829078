"""The fingerprint of a trainer's input data (labels.h5 + vocab.json and regions.h5), for its resume key."""

from __future__ import annotations

from dvsa.data.labels import Labels
from dvsa.hashing import digest
from dvsa.regions.store import RegionStore


def data_fingerprint(labels: Labels, store: RegionStore) -> str:
    """Content hash of labels.h5 + vocab.json and of regions.h5 (ids, boxes, counts, first and last features).

    The features of every image are not read (regions.h5 of COCO is tens of GB); any regions.h5 the
    `regions` stage writes anew from other images or another CNN changes its boxes or its end features.
    """
    parts = [labels.labels, labels.label_start_ix, labels.label_end_ix, store.image_id, store.boxes, store.n_regions]
    parts.append(repr((len(store), store.dim, sorted(labels.ix_to_word.items()))))
    if len(store):
        parts.append(store.feats([0, len(store) - 1]))
    return digest(*parts)
