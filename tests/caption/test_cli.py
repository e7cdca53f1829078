from __future__ import annotations

import json
import shutil
import subprocess
import sys
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

VOCAB = {1: "a", 2: "red", 3: "circle", 4: "<b>"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    net = NetParams(input_size=32, channels=[4, 4, 4, 4], fc6_dim=16, fc7_dim=24)
    save_region_cnn(
        ShapesRegionCNN(net, ["red circle"]), RegionsParams(shapes=ShapesParams(net=net)), root / "region_cnn.pt"
    )
    captioner = Captioner(
        len(VOCAB), 24 + GEOMETRY_DIM, "regions", "lstm", rnn_size=8, input_encoding_size=8, att_size=8
    )
    with torch.no_grad():
        captioner.logit.bias.copy_(torch.tensor([-5.0, 3.0, 2.0, 1.0, 0.0]))  # a few words before END
    save_checkpoint(
        root / "captioner.pt",
        {
            "state_dict": captioner.state_dict(),
            "config": captioner.config,
            "features": {"dim": 24, "geometry": True},
            "params": {"region_geometry": True},
            "vocab": {str(k): w for k, w in VOCAB.items()},
            "max_length": 6,
        },
    )
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (37, 53, 4), dtype=np.uint8), "RGBA").save(root / "odd.png")
    Image.fromarray(rng.integers(0, 255, (300, 200), dtype=np.uint8), "L").save(root / "gray.jpg", quality=80)
    (root / "broken.jpg").write_bytes(b"this is not a JPEG")
    return {"root": root, "captioner": root / "captioner.pt", "region_cnn": root / "region_cnn.pt"}


def args(models: dict[str, Path], *images: str) -> list[str]:
    return [
        "caption",
        *images,
        "--model",
        str(models["captioner"]),
        "--region-cnn",
        str(models["region_cnn"]),
        "--max-length",
        "5",
    ]


def test_captions_png_and_jpeg_and_reports_a_bad_file(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    r = models["root"]
    code = main(args(models, str(r / "odd.png"), str(r / "broken.jpg"), str(r / "gray.jpg"), str(r / "missing.png")))
    out, err = capsys.readouterr()
    assert code == 1
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(r / "odd.png"), str(r / "gray.jpg")]
    for line in lines:
        words = line.split("\t")[1].split()
        assert 1 <= len(words) <= 5 and set(words) <= set(VOCAB.values())
    assert len(err.splitlines()) == 2
    assert "broken.jpg" in err.splitlines()[0] and "missing.png" in err.splitlines()[1]


def test_json_output_and_exit_zero(models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    r = models["root"]
    assert main(args(models, str(r / "gray.jpg"), str(r / "odd.png"), "--json", "--batch-size", "1")) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["image"] for d in data] == [str(r / "gray.jpg"), str(r / "odd.png")]
    assert all(isinstance(d["caption"], str) and d["caption"] for d in data)


def test_missing_model_is_one_line(models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["caption", str(models["root"] / "odd.png"), "--model", str(models["root"] / "nope.pt")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "nope.pt: file not found" in err


@pytest.mark.skipif(shutil.which("dvsa", path=str(Path(sys.executable).parent)) is None, reason="dvsa not installed")
def test_console_script(models: dict[str, Path]) -> None:
    exe = shutil.which("dvsa", path=str(Path(sys.executable).parent))
    r = models["root"]
    result = subprocess.run(
        [exe, *args(models, str(r / "gray.jpg"), str(r / "broken.jpg"))], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stdout.startswith(str(r / "gray.jpg") + "\t")
    assert result.stderr.count("\n") == 1 and "broken.jpg" in result.stderr


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty file, not a checkpoint"),
        (b"hello\n", "not a readable torch file (torch.load: "),
        (bytes(range(256)) * 4, "not a readable torch file (torch.load: "),
    ],
)
def test_a_model_that_is_not_a_checkpoint_is_one_line(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(content)
    code = main(
        ["caption", str(models["root"] / "odd.png"), "--model", str(bad), "--region-cnn", str(models["region_cnn"])]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and f"{bad}: {message}" in err


def test_a_region_cnn_as_the_model_is_named_as_such(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["caption", str(models["root"] / "odd.png"), "--model", str(models["region_cnn"])])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "format 'dvsa.region_cnn/2', expected 'dvsa.captioner/2'" in err
