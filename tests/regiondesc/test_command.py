"""`dvsa describe`: a description per detection (text, --json, --figure), an unreadable file on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dvsa.caption.checkpoint import save_checkpoint
from dvsa.caption.model import Captioner
from dvsa.cli import main
from dvsa.features import GEOMETRY_DIM
from dvsa.regions.checkpoint import save_region_cnn
from dvsa.regions.config import NetParams, RegionsParams, ShapesParams
from dvsa.regions.shapes_net import ShapesRegionCNN

VOCAB = {1: "a", 2: "red", 3: "circle"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("describe")
    torch.manual_seed(0)
    net = NetParams(input_size=32, channels=[4, 4, 4, 4], fc6_dim=16, fc7_dim=24)
    save_region_cnn(ShapesRegionCNN(net, ["red circle"]), RegionsParams(shapes=ShapesParams(net=net)), root / "cnn.pt")
    model = Captioner(len(VOCAB), 24 + GEOMETRY_DIM, "whole", "lstm", rnn_size=8, input_encoding_size=8, att_size=8)
    with torch.no_grad():
        model.logit.bias.copy_(torch.tensor([-5.0, 3.0, 2.0, 1.0]))
    save_checkpoint(
        root / "region.pt",
        {
            "state_dict": model.state_dict(),
            "config": model.config,
            "features": {"dim": 24, "geometry": True},
            "params": {"region_geometry": True},
            "vocab": {str(k): w for k, w in VOCAB.items()},
            "max_length": 4,
        },
    )
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(root / "a.png")
    (root / "broken.png").write_bytes(b"not a PNG")
    return {"root": root, "model": root / "region.pt", "cnn": root / "cnn.pt", "image": root / "a.png"}


def run(files: dict[str, Path], *extra: str) -> int:
    return main(
        ["describe", *extra, "--model", str(files["model"]), "--region-cnn", str(files["cnn"]), "--min-score", "0"]
    )


def test_json_lists_each_detection_with_a_description(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    figure = files["root"] / "out.png"
    assert run(files, str(files["image"]), "--json", "--figure", str(figure)) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["image"] == str(files["image"]) and result["regions"]
    for region in result["regions"]:
        assert len(region["box"]) == 4 and set(region["description"].split()) <= set(VOCAB.values())
    assert Image.open(figure).width >= 384


def test_text_lines_and_an_unreadable_file(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(files, str(files["root"] / "broken.png"), str(files["image"])) == 1
    out, err = capsys.readouterr()
    assert "broken.png" in err and len(err.strip().splitlines()) == 1
    lines = out.strip().splitlines()
    assert lines and all(line.split("\t")[0] == str(files["image"]) and len(line.split("\t")) == 4 for line in lines)
