"""The region-phrase dataset (§3.2 end): snippets grouped by (image, region), written in neuraltalk2's labels
format with one "image" per region, and an index file saying which image row and region each one is.

labels.h5 + vocab.json: as dvsa.data.labels (the vocabulary is the sentences' own); vocab.json ``images[k]``
= ``{"split", "id": k, "file_path"}`` of the region's image. index.json: ``{"regions": [{"image_row",
"region", "image_id", "box"}, ...]}``, entry k for "image" k; image_row is the row of regions.h5.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dvsa.data.labels import Labels
from dvsa.errors import InputError
from dvsa.io import read_json

if TYPE_CHECKING:  # the stages that read the dataset need not import the alignment model
    from dvsa.regiondesc.snippets import Snippet


@dataclass
class RegionPhrases:
    labels: Labels  # one "image" per (image, region) pair
    index: list[dict[str, Any]]  # (K,) its image_row, region, image_id, box


def region_phrase_dataset(
    snippets: Sequence[Snippet], source: Labels, boxes: np.ndarray, max_length: int
) -> RegionPhrases:
    """Group `snippets` by (image row, region) in that order; each group's snippets are its captions, cut to
    `max_length` words. `source` is the sentences' labels (vocabulary, splits, ids), `boxes` (N, R, 4) those
    of regions.h5."""
    groups: dict[tuple[int, int], list[tuple[int, ...]]] = {}
    for s in snippets:
        groups.setdefault((s.image_row, s.region), []).append(s.words)
    keys = sorted(groups)
    captions = [words for key in keys for words in groups[key]]
    array = np.zeros((len(captions), max_length), dtype=np.uint32)  # (M, L)
    for m, words in enumerate(captions):
        array[m, : min(len(words), max_length)] = words[:max_length]
    counts = np.array([len(groups[key]) for key in keys], dtype=np.int64)
    ends = np.cumsum(counts)
    images, index = [], []
    for k, (row, region) in enumerate(keys):
        info = source.images[row]
        images.append({"split": info["split"], "id": k, "file_path": info.get("file_path", "")})
        index.append(
            {
                "image_row": row,
                "region": region,
                "image_id": info["id"],
                "box": [round(float(c), 2) for c in boxes[row, region]],
            }
        )
    labels = Labels(
        labels=array,
        label_start_ix=(ends - counts + 1).astype(np.uint32),
        label_end_ix=ends.astype(np.uint32),
        label_length=np.array([min(len(w), max_length) for w in captions], dtype=np.uint32),
        ix_to_word=dict(source.ix_to_word),
        images=images,
    )
    return RegionPhrases(labels, index)


def snippet_statistics(snippets: Sequence[Snippet], source: Labels, image_ix: np.ndarray) -> dict[str, Any]:
    """Per split of `image_ix`: images, snippets, snippets per image, regions described per image, words
    per snippet (mean and histogram)."""
    out: dict[str, Any] = {}
    for split in sorted({source.images[int(i)]["split"] for i in image_ix}):
        rows = {int(i) for i in image_ix if source.images[int(i)]["split"] == split}
        mine = [s for s in snippets if s.image_row in rows]
        lengths = np.array([len(s.words) for s in mine], dtype=np.int64)
        out[split] = {
            "images": len(rows),
            "snippets": len(mine),
            "snippets_per_image": len(mine) / max(len(rows), 1),
            "regions_per_image": len({(s.image_row, s.region) for s in mine}) / max(len(rows), 1),
            "words_per_snippet": float(lengths.mean()) if len(lengths) else 0.0,
            "words_histogram": {str(n): int(c) for n, c in enumerate(np.bincount(lengths)) if c},
        }
    return out


def read_index(path: str | os.PathLike[str], n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(image_rows (K,), regions (K,)) of index.json; rows outside regions.h5's `n_rows` are an InputError."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("regions"), list):
        raise InputError(f"{path}: expected {{'regions': [...]}} (rerun `dvc repro region_snippets`)")
    try:
        rows = np.array([int(e["image_row"]) for e in data["regions"]], dtype=np.int64)
        regions = np.array([int(e["region"]) for e in data["regions"]], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: each entry needs an integer image_row and region") from None
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise InputError(f"{path}: image rows outside regions.h5's {n_rows} (rerun `dvc repro region_snippets`)")
    return rows, regions
