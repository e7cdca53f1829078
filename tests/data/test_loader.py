from __future__ import annotations

import numpy as np

from dvsa.data.labels import Labels
from dvsa.data.loader import iterate_batches


def make_labels() -> Labels:
    # image 0: 3 captions, image 1: 1 caption, image 2: 2 captions; caption k is filled with k + 1
    counts = [3, 1, 2]
    rows = np.repeat(np.arange(1, 7, dtype=np.uint32)[:, None], 4, axis=1)
    ends = np.cumsum(counts)
    return Labels(
        labels=rows, label_start_ix=(ends - np.array(counts) + 1).astype(np.uint32), label_end_ix=ends.astype(np.uint32),
        label_length=np.full(6, 4, dtype=np.uint32), ix_to_word={i: f"w{i}" for i in range(1, 7)},
        images=[{"split": "train", "id": i, "file_path": f"{i}.png"} for i in range(3)],
    )


def test_in_order_batches_take_each_image_captions() -> None:
    batches = list(iterate_batches(make_labels(), "train", batch_size=2, seq_per_img=2))
    assert [list(b.image_ix) for b in batches] == [[0, 1], [2]]
    assert list(batches[0].labels[:, 0]) == [1, 2, 4, 4]  # image 1 has one caption: drawn twice
    assert list(batches[1].labels[:, 0]) == [5, 6]
    assert batches[0].labels.dtype == np.int64


def test_shuffled_batches_draw_captions_of_the_right_image() -> None:
    labels = make_labels()
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        for b in iterate_batches(labels, "train", batch_size=3, seq_per_img=2, rng=rng):
            for j, i in enumerate(b.image_ix):
                own = set(labels.captions(int(i))[:, 0])
                caps = b.labels[2 * j : 2 * j + 2, 0]
                assert set(caps) <= own
                if len(own) >= 2:
                    assert caps[0] != caps[1]  # without replacement when there are enough
                seen.update(caps)
    assert seen == {1, 2, 3, 4, 5, 6}
