"""The snippet -> region-phrase dataset conversion on a hand-made case, and the MRF snippet filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dvsa.data.labels import Labels, read_labels, write_labels
from dvsa.errors import InputError
from dvsa.io import write_json
from dvsa.regiondesc.dataset import read_index, region_phrase_dataset, snippet_statistics
from dvsa.regiondesc.snippets import Snippet, content_words, mrf_snippets
from dvsa.regions.store import N_REGIONS, RegionStore, RegionWriter

WORDS = ["a", "red", "circle", "left", "of", "blue", "square", "there", "is"]
IX = {w: i + 1 for i, w in enumerate(WORDS)}


def ids(text: str) -> tuple[int, ...]:
    return tuple(IX[w] for w in text.split())


def source_labels(splits: list[str], sentences: list[list[str]]) -> Labels:
    """labels.h5 of images with these splits; image i's sentences are sentences[i]."""
    rows, start, end = [], [], []
    for caps in sentences:
        start.append(len(rows) + 1)
        for cap in caps:
            row = np.zeros(16, dtype=np.uint32)
            row[: len(cap.split())] = ids(cap)
            rows.append(row)
        end.append(len(rows))
    return Labels(
        labels=np.stack(rows),
        label_start_ix=np.array(start, dtype=np.uint32),
        label_end_ix=np.array(end, dtype=np.uint32),
        label_length=(np.stack(rows) > 0).sum(1).astype(np.uint32),
        ix_to_word={i: w for w, i in IX.items()},
        images=[{"split": s, "id": 50 + i, "file_path": f"{i}.png"} for i, s in enumerate(splits)],
    )


def test_snippets_grouped_by_image_and_region(tmp_path: Path) -> None:
    source = source_labels(["train", "val", "train"], [["a red circle"]] * 3)
    boxes = np.zeros((3, N_REGIONS, 4), dtype=np.float32)
    boxes[0, 2] = [1, 2, 3, 4]
    boxes[2, 1] = [5.555, 6, 7, 8]
    snippets = [
        Snippet(2, 1, ids("a blue square")),
        Snippet(0, 2, ids("a red circle")),
        Snippet(0, 2, ids("red circle")),
        Snippet(1, 3, ids("blue square")),
        Snippet(0, 2, ids("a red circle left of a blue square")),  # cut to max_length
    ]
    out = region_phrase_dataset(snippets, source, boxes, max_length=4)
    assert [(e["image_row"], e["region"]) for e in out.index] == [(0, 2), (1, 3), (2, 1)]
    assert [e["image_id"] for e in out.index] == [50, 51, 52]
    assert out.index[0]["box"] == [1, 2, 3, 4] and out.index[2]["box"] == [5.55, 6, 7, 8]
    lab = out.labels
    assert lab.label_start_ix.tolist() == [1, 4, 5] and lab.label_end_ix.tolist() == [3, 4, 5]
    assert lab.labels.shape == (5, 4)
    assert lab.labels[:3].tolist() == [
        [*ids("a red circle"), 0],
        [*ids("red circle"), 0, 0],
        list(ids("a red circle left")),
    ]
    assert lab.label_length.tolist() == [3, 2, 4, 2, 3]
    assert [im["split"] for im in lab.images] == ["train", "val", "train"]
    assert [im["id"] for im in lab.images] == [0, 1, 2] and lab.images[0]["file_path"] == "0.png"
    assert lab.split_indices("train").tolist() == [0, 2]
    # neuraltalk2's files round-trip, and the index maps each "image" back to its region
    write_labels(tmp_path / "labels.h5", tmp_path / "vocab.json", lab)
    back = read_labels(tmp_path / "labels.h5", tmp_path / "vocab.json")
    assert np.array_equal(back.labels, lab.labels) and back.ix_to_word == source.ix_to_word
    write_json(tmp_path / "index.json", {"regions": out.index})
    rows, regions = read_index(tmp_path / "index.json", n_rows=3)
    assert rows.tolist() == [0, 1, 2] and regions.tolist() == [2, 3, 1]
    with pytest.raises(InputError, match="outside"):
        read_index(tmp_path / "index.json", n_rows=2)
    stats = snippet_statistics(snippets, source, np.array([0, 1, 2]))
    assert stats["train"]["snippets"] == 4 and stats["train"]["snippets_per_image"] == 2.0
    assert stats["train"]["regions_per_image"] == 1.0 and stats["val"]["words_per_snippet"] == 2.0


def test_content_words_fall_back_to_every_word_without_the_shapes_lexicon() -> None:
    assert {WORDS[i - 1] for i in content_words({i: w for w, i in IX.items()})} == {"red", "circle", "blue", "square"}
    assert content_words({1: "dog", 2: "UNK", 3: "grass"}) == {1, 3}


class OneHotModel(torch.nn.Module):
    """Region i embeds as e_i; word w as e_{REGION_OF[w]}: each word's unary picks its region (eq. (11))."""

    def embed_images(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.eye(N_REGIONS)[None].expand(feats.shape[0], -1, -1)  # (B, R, R)

    def embed_sentences(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        target = torch.tensor([0] + [REGION_OF[w] for w in WORDS])[words]  # (B, T)
        return torch.eye(N_REGIONS)[target], words > 0


REGION_OF = {"a": 1, "red": 1, "circle": 1, "left": 0, "of": 0, "blue": 2, "square": 2, "there": 3, "is": 3}


def test_mrf_snippets_keep_content_segments_on_detected_regions(tmp_path: Path) -> None:
    with RegionWriter(tmp_path / "regions.h5", 1, 8) as w:
        w.append(
            np.zeros((1, N_REGIONS, 8)),
            np.zeros((1, N_REGIONS, 4)),
            np.zeros((1, N_REGIONS)),
            np.array([4]),
            np.array([50]),
        )
    labels = source_labels(["train"], [["there is a red circle left of a blue square"]])
    with RegionStore(tmp_path / "regions.h5") as store:
        got = mrf_snippets(OneHotModel(), labels, store, np.array([0]), beta=0.1, max_words=6)  # type: ignore[arg-type]
        # segments: "there is" (3) "a red circle" (1) "left of" (0) "a" (1) "blue square" (2): neither the one
        # on region 0 nor those without a colour or shape word are snippets
        assert got == [Snippet(0, 1, ids("a red circle")), Snippet(0, 2, ids("blue square"))]
        short = mrf_snippets(OneHotModel(), labels, store, np.array([0]), beta=0.1, max_words=2)  # type: ignore[arg-type]
        assert short == [Snippet(0, 2, ids("blue square"))]  # "a red circle" is longer than max_words
