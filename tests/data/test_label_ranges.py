"""label_start_ix / label_end_ix are 1-indexed and inclusive (neuraltalk2): every reader takes an image's own
captions, all of them, and no neighbour's."""

from __future__ import annotations

import numpy as np

from dvsa.align.retrieval import split_sentences
from dvsa.data.config import PreprocessParams
from dvsa.data.labels import Labels
from dvsa.data.loader import iterate_batches
from dvsa.data.prepro import build_labels

COUNTS = [2, 3, 1, 2]  # captions per image; every word of image i's captions is word i + 1


def _labels() -> Labels:
    owner = np.repeat(np.arange(len(COUNTS)), COUNTS)  # (M,)
    ends = np.cumsum(COUNTS)
    return Labels(labels=np.repeat(owner[:, None] + 1, 3, axis=1).astype(np.uint32),
                  label_start_ix=(ends - np.array(COUNTS) + 1).astype(np.uint32), label_end_ix=ends.astype(np.uint32),
                  label_length=np.full(len(owner), 3, np.uint32), ix_to_word={i + 1: f"w{i}" for i in range(len(COUNTS))},
                  images=[{"split": "train", "id": i, "file_path": ""} for i in range(len(COUNTS))])


def test_captions_of_an_image_are_all_its_own() -> None:
    labels = _labels()
    for i, n in enumerate(COUNTS):
        caps = labels.captions(i)
        assert caps.shape == (n, 3) and (caps == i + 1).all()


def test_split_sentences_takes_every_caption_of_each_image() -> None:
    s = split_sentences(_labels(), np.array([3, 1, 0]))
    assert list(s.sentence_image) == [0, 0, 1, 1, 1, 2, 2]
    assert list(s.words[:, 0]) == [4, 4, 2, 2, 2, 1, 1]


def test_batches_draw_only_own_captions() -> None:
    labels = _labels()
    rng = np.random.default_rng(0)
    for _ in range(10):
        for b in iterate_batches(labels, "train", batch_size=3, seq_per_img=3, rng=rng):
            assert (b.labels[:, 0] == np.repeat(b.image_ix + 1, 3)).all()
    seen = {tuple(b.labels[:, 0]) for b in iterate_batches(labels, "train", batch_size=4, seq_per_img=3)}
    assert seen == {(1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4)}


def test_prepro_writes_1_indexed_inclusive_ranges() -> None:
    images = [{"imgid": i, "split": "train", "filename": f"{i}.png",
               "sentences": [{"tokens": [f"w{i}"] * 2} for _ in range(n)]} for i, n in enumerate(COUNTS)]
    labels, _ = build_labels({"images": images}, PreprocessParams(word_count_threshold=0))
    assert list(labels.label_start_ix) == [1, 3, 6, 7] and list(labels.label_end_ix) == [2, 5, 6, 8]
