"""R@K and median rank against a hand-worked example; the chance levels against enumeration."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest

from dvsa.metrics.ranking import annotation_chance, annotation_ranks, recall_summary, search_chance, search_ranks


def test_hand_worked_example() -> None:
    # 3 images, 6 sentences; sentences 0,1 -> image 0, 2,3 -> image 1, 4,5 -> image 2
    sentence_image = np.array([0, 0, 1, 1, 2, 2])
    scores = np.array([
        [0.9, 0.1, 0.8, 0.2, 0.3, 0.4],  # image 0: its best GT 0.9 is first -> rank 1
        [0.5, 0.6, 0.1, 0.4, 0.7, 0.0],  # image 1: GT 0.1, 0.4; 0.5, 0.6, 0.7 above -> rank 4
        [0.2, 0.3, 0.9, 0.8, 0.1, 0.85],  # image 2: GT 0.1, 0.85; 0.9 above -> rank 2
    ])
    assert annotation_ranks(scores, sentence_image).tolist() == [1, 4, 2]
    # search, column by column: s0 [.9 .5 .2] own .9 -> 1; s1 [.1 .6 .3] own .1 -> 3; s2 [.8 .1 .9] own .1 -> 3;
    # s3 [.2 .4 .8] own .4 -> 2; s4 [.3 .7 .1] own .1 -> 3; s5 [.4 0 .85] own .85 -> 1
    assert search_ranks(scores, sentence_image).tolist() == [1, 3, 3, 2, 3, 1]
    s = recall_summary(np.array([1, 4, 2]), ks=(1, 2, 5))
    assert s == pytest.approx({"r1": 100 / 3, "r2": 200 / 3, "r5": 100.0, "medr": 2.0})


def test_ties_go_against_the_ground_truth() -> None:
    scores = np.zeros((4, 8))
    sentence_image = np.repeat(np.arange(4), 2)
    assert annotation_ranks(scores, sentence_image).tolist() == [7] * 4  # after the 6 other sentences
    assert search_ranks(scores, sentence_image).tolist() == [4] * 8
    assert recall_summary(search_ranks(scores, sentence_image))["r1"] == 0.0


def test_annotation_ranks_on_a_block_of_rows() -> None:
    sentence_image = np.array([0, 1, 2, 2])
    scores = np.array([[0.0, 0.1, 0.9, 0.2], [0.3, 0.2, 0.1, 0.0], [0.0, 0.9, 0.5, 0.1]])
    full = annotation_ranks(scores, sentence_image)
    assert annotation_ranks(scores[1:], sentence_image, image_ix=np.array([1, 2])).tolist() == full[1:].tolist()


def test_annotation_chance_by_enumeration() -> None:
    # 3 images with 2 sentences each: exact distribution of the first GT's rank over all 6! orders
    n_sent, g = 6, 2
    ranks = []
    for perm in itertools.permutations(range(n_sent)):
        ranks.append(min(perm.index(0), perm.index(1)) + 1)
    ranks = np.array(ranks)
    chance = annotation_chance(np.array([g, g, g]), n_sent, ks=(1, 2, 3))
    for k in (1, 2, 3):
        assert chance[f"r{k}"] == pytest.approx(100 * np.mean(ranks <= k))
    assert chance["medr"] == 2.0  # P(rank <= 2) = 1 - C(4,2)/C(6,2) = 0.6
    assert annotation_chance(np.array([5] * 200), 1000, ks=(5,))["r5"] == pytest.approx(
        100 * (1 - comb(995, 5) / comb(1000, 5)))


def test_search_chance() -> None:
    assert search_chance(200) == pytest.approx({"r1": 0.5, "r5": 2.5, "r10": 5.0, "medr": 100.5})
    assert search_chance(5)["r10"] == 100.0
    assert search_chance(5)["medr"] == 3.0
