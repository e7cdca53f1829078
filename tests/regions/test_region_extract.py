"""extract_regions: 20 regions per image, boxes in the original pixels of images of any size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dvsa.errors import InputError, ParamsError
from dvsa.regions.extract import extract_regions
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.regions.store import N_REGIONS
from tests.regions.toy import draw_scene, tiny_params


def toy_model() -> ShapesRegionCNN:
    torch.manual_seed(0)
    return ShapesRegionCNN(tiny_params().net, ["blue circle", "red square", "yellow triangle"]).eval()


def toy_images(sizes: list[tuple[int, int]]) -> tuple[list, list[np.ndarray]]:
    rng = np.random.default_rng(3)
    scenes = [draw_scene(rng, w, h, 2) for w, h in sizes]
    return [s[0] for s in scenes], [np.array([o["box"] for o in s[1]], np.float32) for s in scenes]


def test_oracle_boxes_come_back_in_original_pixels() -> None:
    """Images of odd, non-square sizes are resized to 64x64 for the network; the boxes must map back."""
    images, true_boxes = toy_images([(50, 37), (97, 64), (64, 64)])
    out = extract_regions(toy_model(), images, tiny_params(proposals="oracle").detect, true_boxes)
    assert out.feats.shape == (3, N_REGIONS, 48) and out.boxes.shape == (3, N_REGIONS, 4)
    for i, (image, boxes) in enumerate(zip(images, true_boxes)):
        n = 1 + len(boxes)
        assert out.n_regions[i] == n
        np.testing.assert_allclose(out.boxes[i, 0], [0, 0, *image.size])
        got = out.boxes[i, 1:n][np.lexsort(out.boxes[i, 1:n].T[::-1])]
        np.testing.assert_allclose(got, boxes[np.lexsort(boxes.T[::-1])], atol=1e-3)
        assert out.scores[i, 0] == 1.0 and np.all(out.scores[i, n:] == 0)
        assert np.all(out.boxes[i, n:] == 0) and np.all(out.feats[i, n:] == 0)
        assert np.abs(out.feats[i, :n]).sum(1).min() > 0


def test_detected_regions_lie_inside_the_image_best_first() -> None:
    images, _ = toy_images([(50, 37), (97, 64)])
    out = extract_regions(toy_model(), images, tiny_params().detect)
    for i, image in enumerate(images):
        n = out.n_regions[i]
        w, h = image.size
        assert 2 <= n <= N_REGIONS
        b = out.boxes[i, :n]
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        s = out.scores[i, 1:n]
        assert np.all(np.diff(s) <= 1e-6) and np.all((s > 0) & (s <= 1))


def test_an_image_gets_the_same_regions_alone_or_in_a_batch() -> None:
    images, _ = toy_images([(64, 64), (80, 48), (33, 90)])
    model, detect = toy_model(), tiny_params().detect
    together = extract_regions(model, images, detect)
    alone = extract_regions(model, images[1:2], detect)
    np.testing.assert_allclose(together.boxes[1], alone.boxes[0], atol=1e-4)
    np.testing.assert_allclose(together.feats[1], alone.feats[0], atol=1e-5)


def test_oracle_without_true_boxes_is_an_error() -> None:
    images, _ = toy_images([(64, 64)])
    with pytest.raises(InputError, match="oracle"):
        extract_regions(toy_model(), images, tiny_params(proposals="oracle").detect)


def test_input_size_must_fit_the_stride() -> None:
    net = tiny_params().net
    net.input_size = 60
    with pytest.raises(ParamsError, match="regions.net.input_size: must be a multiple of 8"):
        ShapesRegionCNN(net, ["a"])
