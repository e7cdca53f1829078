"""benchmarks/relations_only.py's filter: the train images keep only their captions with a direction word."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from dvsa.data.labels import Labels

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _labels() -> Labels:
    ix_to_word = {1: "a", 2: "star", 3: "left", 4: "of", 5: "disc", 6: "under"}
    captions = [[1, 2, 3, 4, 1, 5], [1, 2], [1, 5, 6, 1, 2], [1, 5], [1, 2, 3, 4, 1, 5], [1, 2]]
    labels = np.zeros((len(captions), 8), np.uint32)
    for k, c in enumerate(captions):
        labels[k, : len(c)] = c
    images = [{"split": "train", "id": 0}, {"split": "train", "id": 1}, {"split": "test", "id": 2}]
    return Labels(labels, np.array([1, 4, 5], np.uint32), np.array([3, 4, 6], np.uint32),
                  np.array([len(c) for c in captions], np.uint32), ix_to_word, images)


def test_train_images_keep_their_relation_captions_only(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    relation_only = importlib.import_module("relations_only").relation_only
    labels = _labels()
    out = relation_only(labels)
    # image 0: captions 0 (left) and 2 (under) of 0..2; image 1: no direction word, out of train; image 2 (test): all
    assert [im["split"] for im in out.images] == ["train", "unused", "test"]
    assert [c.tolist() for c in out.captions(0)] == [labels.labels[0].tolist(), labels.labels[2].tolist()]
    assert out.captions(1).tolist() == labels.captions(1).tolist()
    assert out.captions(2).tolist() == labels.captions(2).tolist()
    assert out.label_length.tolist() == [6, 5, 2, 6, 2]
    assert out.split_indices("train").tolist() == [0]
