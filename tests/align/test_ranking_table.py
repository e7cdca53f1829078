"""The per-image and per-sentence ranking tables against the hand-worked example of test_ranking.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvsa.align.evaluation import AlignmentResults, SentenceAlignment
from dvsa.align.ranking_table import image_table, sentence_table
from dvsa.align.retrieval import Ranks
from dvsa.data.labels import Labels
from dvsa.io import write_csv
from dvsa.metrics.ranking import recall_summary

# 3 images (rows 4, 7, 9 of the labels), 6 sentences: 0,1 -> image 0, 2,3 -> image 1, 4,5 -> image 2
SENTENCE_IMAGE = np.array([0, 0, 1, 1, 2, 2])
SCORES = np.array([
    [0.9, 0.1, 0.8, 0.2, 0.3, 0.4],
    [0.5, 0.6, 0.1, 0.4, 0.7, 0.0],
    [0.2, 0.3, 0.9, 0.8, 0.1, 0.85],
])
ROWS = np.array([4, 7, 9])


def results() -> tuple[AlignmentResults, Labels]:
    images = [{"split": "train", "id": 100 + i, "file_path": f"sub/{i}.png"} for i in range(10)]
    labels = Labels(np.zeros((0, 1)), np.zeros(10), np.zeros(10), np.zeros(0), {}, images)
    sentences = [
        SentenceAlignment(int(ROWS[k]), [f"w{l}", "UNK"], np.zeros(2), np.zeros(2), np.zeros((2, 1)))
        for l, k in enumerate(SENTENCE_IMAGE)
    ]
    return AlignmentResults({}, sentences, ROWS, Ranks.of(SCORES, SENTENCE_IMAGE)), labels


def test_image_table(tmp_path: Path) -> None:
    res, labels = results()
    write_csv(tmp_path / "t.csv", image_table(res, labels))
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns) == ["image_id", "file", "sentences", "annotation_rank", "search_rank_best",
                                   "search_rank_median", "search_rank_worst"]
    assert table["image_id"].tolist() == [104, 107, 109]
    assert table["file"].tolist() == ["sub/4.png", "sub/7.png", "sub/9.png"]
    assert table["annotation_rank"].tolist() == [1, 4, 2]  # test_ranking.py's hand-worked ranks
    # search ranks [1, 3 | 3, 2 | 3, 1]
    assert table["search_rank_best"].tolist() == [1, 2, 1]
    assert table["search_rank_median"].tolist() == [2.0, 2.5, 2.0]
    assert table["search_rank_worst"].tolist() == [3, 3, 3]
    assert table["sentences"].tolist() == [2, 2, 2]


def test_sentence_table_and_recall_at_k(tmp_path: Path) -> None:
    res, labels = results()
    write_csv(tmp_path / "s.csv", sentence_table(res, labels))
    table = pd.read_csv(tmp_path / "s.csv")
    assert list(table.columns) == ["image_id", "file", "sentence", "search_rank"]
    assert table["image_id"].tolist() == [104, 104, 107, 107, 109, 109]
    assert table["sentence"].tolist()[:2] == ["w0 UNK", "w1 UNK"]
    assert table["search_rank"].tolist() == [1, 3, 3, 2, 3, 1]
    ks = (1, 2, 3)  # R@K of 3 images and 6 sentences
    annotation, search = recall_summary(res.ranks.annotation, ks), recall_summary(res.ranks.search, ks)
    per_image = image_table(res, labels)
    for k in ks:
        assert 100 * np.mean(per_image["annotation_rank"] <= k) == pytest.approx(annotation[f"r{k}"])
        assert 100 * np.mean(table["search_rank"] <= k) == pytest.approx(search[f"r{k}"])
    assert table["search_rank"].median() == search["medr"] == 2.5
