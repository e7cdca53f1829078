"""The batched pretrained path (issue 22): the trunk and the detector over a padded batch of images of
different sizes give each image the boxes and features of its own run (dvsa.regions.padded), within the
tolerance docs/real-data.md states for autocast (fc7 within 0.26% relative L2, boxes within 0.5 px).

The networks are torchvision's architectures with random weights scaled by their fan-in (He), so that
activations and class scores stay of order one and untied (torchvision's own init lets MobileNetV3's
activations vanish to 1e-8, where every image would get the same scores).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dvsa.regions.config import DetectParams, PretrainedParams
from dvsa.regions.data import ImageRecord
from dvsa.regions.extract import RegionBatch, extract_regions, write_regions
from dvsa.regions.padded import output_size, pad_images, run_padded, strided_extents
from dvsa.regions.pretrained import DETECTORS, ENCODERS, PretrainedRegionCNN
from tests.regions.toy import draw_scene

SIZES = [(150, 100), (77, 120), (130, 130), (200, 90), (96, 160)]  # (W, H): both orientations, odd sides
DETECT = DetectParams(n_proposals=50, min_size=96, max_size=160)
FEATURE_TOLERANCE = 0.0026  # relative L2 of fc7 (docs/real-data.md, fp16 autocast)
BOX_TOLERANCE = 0.5  # pixels


def he_state_dict(build: Callable[[], nn.Module], seed: int) -> dict[str, torch.Tensor]:
    """Random weights of the architecture: N(0, 2 / fan_in) weights, small biases, identity batch norms."""
    with torch.device("meta"):
        model = build()
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.endswith("running_var"):
            state[name] = torch.ones(t.shape)
        elif name.endswith("running_mean"):
            state[name] = torch.zeros(t.shape)
        elif t.dim() > 1:
            state[name] = torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5
        elif name.endswith("weight"):  # a norm's scale; a residual branch's last one small (ResNet's blocks)
            state[name] = torch.full(t.shape, 0.2 if ".bn3." in name else 1.0)
        else:
            state[name] = torch.randn(t.shape, generator=g) * 0.1
    return state


def random_model(backbone: str, detector: str) -> PretrainedRegionCNN:
    encoder, det = ENCODERS[backbone].build(), DETECTORS[detector].build()
    encoder.load_state_dict(he_state_dict(ENCODERS[backbone].build, 0), strict=False)
    det.load_state_dict(he_state_dict(DETECTORS[detector].build, 1), strict=False)
    params = PretrainedParams(detector=detector, min_size=96, max_size=160)  # type: ignore[arg-type]
    return PretrainedRegionCNN(backbone, params, encoder, det).eval()


def scenes() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [draw_scene(rng, w, h, 3)[0] for w, h in SIZES]


def assert_same_regions(one: RegionBatch, batched: RegionBatch) -> None:
    np.testing.assert_array_equal(batched.n_regions, one.n_regions)
    np.testing.assert_allclose(batched.boxes, one.boxes, atol=BOX_TOLERANCE, rtol=0)
    np.testing.assert_allclose(batched.scores, one.scores, atol=1e-3, rtol=0)
    for i, n in enumerate(one.n_regions):
        a, b = one.feats[i, :n], batched.feats[i, :n]
        assert np.linalg.norm(b - a) <= FEATURE_TOLERANCE * np.linalg.norm(a), f"image {i}"


@pytest.mark.parametrize(
    ("backbone", "detector"),
    [
        ("alexnet", "fasterrcnn_mobilenet_v3_large_320_fpn"),
        pytest.param("vgg16", "fasterrcnn_resnet50_fpn", marks=pytest.mark.slow),
    ],
)
def test_a_batch_gives_each_image_its_own_regions(backbone: str, detector: str) -> None:
    model = random_model(backbone, detector)
    images = scenes()
    assert not model.batched(len(images))  # on the CPU one image at a time, unless asked
    one = extract_regions(model, images, DETECT)
    model.batch_images = True
    assert model.batched(len(images)) and not model.batched(1)
    batched = extract_regions(model, images, DETECT)
    assert (one.n_regions > 1).all() and np.ptp(one.scores[:, 1]) > 1e-3  # detections scored apart: a real test
    assert_same_regions(one, batched)


def test_the_stage_batched_is_the_stage_one_image_at_a_time(tmp_path: Path) -> None:
    """write_regions with batches of 3 (the features of each batch fetched while the next one runs), shards
    of 5 and an unreadable image, against batches of 1."""
    model = random_model("alexnet", "fasterrcnn_mobilenet_v3_large_320_fpn")
    model.batch_images = True
    paths = []
    for k, image in enumerate(scenes() + scenes()[:2]):
        paths.append(tmp_path / f"{k}.png")
        image.save(paths[-1])
    paths[4].write_bytes(b"not an image")
    records = [ImageRecord(p, "test", k, np.zeros((0, 4), np.float32), ()) for k, p in enumerate(paths)]
    out = {}
    for batch_size in (1, 3):
        h5 = tmp_path / f"regions-{batch_size}.h5"
        result = write_regions(model, records, h5, DETECT, batch_size, "float32", shard_size=5, on_bad_image="skip")
        assert result is not None and [s["index"] for s in result.skipped] == [4]
        with h5py.File(h5, "r") as f:
            out[batch_size] = RegionBatch(*(f[k][()] for k in ("feats", "boxes", "scores", "n_regions")))
    assert out[3].n_regions[4] == 0 and (out[3].feats[4] == 0).all()
    assert_same_regions(out[1], out[3])


def test_output_size_is_the_layers_own() -> None:
    with torch.device("meta"):  # shapes only
        nets = [ENCODERS["alexnet"].build(), ENCODERS["vgg16"].build()]
        layers = [*nets[0].features, *nets[1].features[:5], nn.MaxPool2d(3, 2, 1)]
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            for size in ((67, 64), (101, 77)):
                channels = layer.in_channels if isinstance(layer, nn.Conv2d) else 1
                x = torch.zeros(1, channels, *size, device="meta")
                assert output_size(layer, size) == tuple(layer(x).shape[2:]), layer


def test_run_padded_matches_each_image_alone() -> None:
    torch.manual_seed(0)
    layers = nn.Sequential(nn.Conv2d(3, 4, 5, 2, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 4, 3, 1, 1))
    images = [torch.randn(3, 37, 50), torch.randn(3, 64, 21)]
    with torch.no_grad():
        out, extents = run_padded(layers, pad_images(images), [tuple(x.shape[1:]) for x in images])
        for i, x in enumerate(images):
            alone = layers(x[None])
            assert extents[i] == tuple(alone.shape[2:])
            torch.testing.assert_close(out[i : i + 1, :, : extents[i][0], : extents[i][1]], alone)
    with pytest.raises(TypeError, match="no rule for BatchNorm2d"):
        run_padded(nn.Sequential(nn.BatchNorm2d(3)), pad_images(images), [(37, 50), (64, 21)])


def test_strided_extents() -> None:
    # a batch padded to 928 x 640 (multiples of 32); images padded to 608 x 640 and 928 x 608 on their own
    assert strided_extents([(608, 640), (928, 608)], (928, 640), (116, 80)) == [(76, 80), (116, 76)]  # stride 8
    assert strided_extents([(608, 640), (928, 608)], (928, 640), (15, 10)) == [(10, 10), (15, 10)]  # 64: ceil
