"""The pretrained path (real photos): torchvision weight files found in $TORCH_HOME, never downloaded.

The tests write their own weight files: every tensor has the right name and shape, but is one random row
expanded over its other dimensions (stride 0), so that even AlexNet's file takes a few kilobytes; a weight's
row is scaled by 1 / its fan-in so that activations stay of order one through the layers (float16 features).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dvsa.errors import WeightsError
from dvsa.regions.checkpoint import load_region_cnn, save_region_cnn
from dvsa.regions.config import PretrainedParams, RegionsParams
from dvsa.regions.extract import extract_regions
from dvsa.regions.pretrained import DETECTORS, ENCODERS, PretrainedRegionCNN, build_encoder, load_weights
from dvsa.regions.store import N_REGIONS
from tests.regions.toy import draw_scene

DETECTOR = "fasterrcnn_mobilenet_v3_large_320_fpn"


def small_state_dict(build: object, seed: int) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        model: nn.Module = build()  # type: ignore[operator]
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in model.state_dict().items():
        if not t.dtype.is_floating_point:
            state[name] = torch.zeros(t.shape, dtype=t.dtype)
        elif name.endswith("running_var"):
            state[name] = torch.ones(1).expand(t.shape)
        else:
            scale = 1.0 / t[0].numel() if t.dim() > 1 else 0.01
            row = torch.randn(t.shape[0] if t.dim() else 1, generator=g) * scale
            state[name] = row.view(-1, *[1] * (t.dim() - 1)).expand(t.shape) if t.dim() else row[0]
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # as torchvision's files


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home / "hub" / "checkpoints"


def params(backbone: str = "alexnet") -> RegionsParams:
    return RegionsParams(
        backbone=backbone, **{backbone: PretrainedParams(detector=DETECTOR, min_size=96, max_size=160)}
    )  # type: ignore[arg-type]


def test_alexnet_and_detector_from_the_hub_cache(torch_home: Path, tmp_path: Path) -> None:
    torch.save(small_state_dict(ENCODERS["alexnet"].build, 0), torch_home / "alexnet-owt-7be5be79.pth")
    torch.save(small_state_dict(DETECTORS[DETECTOR].build, 1), torch_home / DETECTORS[DETECTOR].filename)
    p = params()
    model = PretrainedRegionCNN.assemble("alexnet", p.pretrained)
    file_fc7 = torch.load(torch_home / "alexnet-owt-7be5be79.pth", weights_only=True)["classifier.4.weight"]
    assert torch.equal(model.fc[4].weight, file_fc7)  # the file's weights, not a random init
    save_region_cnn(model, p, tmp_path / "region_cnn.pt")
    assert (tmp_path / "region_cnn.pt").stat().st_size < 5e6  # the small files stay small: no copies
    loaded = load_region_cnn(tmp_path / "region_cnn.pt")
    rng = np.random.default_rng(0)
    images = [draw_scene(rng, w, h, 2)[0] for w, h in ((150, 100), (77, 120))]
    out = extract_regions(loaded, images)
    assert out.feats.shape == (2, N_REGIONS, 4096) and np.isfinite(out.feats).all()
    for i, im in enumerate(images):
        n = out.n_regions[i]
        assert 1 <= n <= N_REGIONS
        np.testing.assert_allclose(out.boxes[i, 0], [0, 0, *im.size])
        assert (out.boxes[i, :n, 2] <= im.size[0] + 1e-3).all() and (out.boxes[i, :n, 3] <= im.size[1] + 1e-3).all()
    again = extract_regions(model, images)
    np.testing.assert_allclose(again.feats, out.feats, rtol=1e-5, atol=1e-6)  # saved + loaded = assembled


def test_missing_vgg16_names_the_file_and_the_folder(torch_home: Path) -> None:
    with pytest.raises(WeightsError) as err:
        PretrainedRegionCNN.assemble("vgg16", params("vgg16").pretrained)
    message = str(err.value)
    assert "vgg16-397923af.pth" in message and str(torch_home) in message and "\n" not in message


def test_missing_detector_and_explicit_path(torch_home: Path, tmp_path: Path) -> None:
    torch.save(small_state_dict(ENCODERS["alexnet"].build, 0), torch_home / "alexnet-owt-7be5be79.pth")
    with pytest.raises(WeightsError, match=DETECTORS[DETECTOR].filename):
        PretrainedRegionCNN.assemble("alexnet", params().pretrained)
    p = params().pretrained
    p.encoder_weights = str(tmp_path / "nowhere" / "alexnet.pth")
    with pytest.raises(WeightsError, match="nowhere/alexnet.pth.*encoder_weights"):
        PretrainedRegionCNN.assemble("alexnet", p)


def test_a_file_of_another_network_does_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(small_state_dict(ENCODERS["alexnet"].build, 0), path)
    with pytest.raises(WeightsError, match="vgg16-397923af.pth: does not fit torchvision's vgg16"):
        load_weights(build_encoder("vgg16"), path, "vgg16", assign=True)
    state = small_state_dict(ENCODERS["alexnet"].build, 0)
    state["classifier.4.weight"] = torch.zeros(10, 4096)
    torch.save(state, path)
    with pytest.raises(WeightsError, match="does not fit torchvision's alexnet .*size mismatch"):
        load_weights(build_encoder("alexnet"), path, "alexnet", assign=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(build_encoder("alexnet"), path, "alexnet", assign=True)
