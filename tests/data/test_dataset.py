from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dvsa.data.dataset import image_path, load_karpathy
from dvsa.errors import InputError
from tests.conftest import write_karpathy


def mutate(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_valid_dataset_normalised(karpathy: tuple[Path, Path]) -> None:
    path, root = karpathy
    data = load_karpathy(path, root, "train")
    assert data["dataset"] == "tiny" and data["image_root"] == str(root)
    assert [im["split"] for im in data["images"]] == ["train", "train", "train", "val", "test", "test"]
    assert all(image_path(root, im).is_file() for im in data["images"])
    assert data["images"][0]["cocoid"] == 1000


def test_restval_dropped(karpathy: tuple[Path, Path]) -> None:
    path, root = karpathy
    assert len(load_karpathy(path, root, "drop")["images"]) == 5


def test_non_ascii_words_kept(tmp_path: Path) -> None:
    path, root = write_karpathy(tmp_path, sentences=["Un café très chaud", "ein Bär", "東京 の 猫", "naïve", "x"])
    data = load_karpathy(path, root, "train")
    assert data["images"][0]["sentences"][0]["tokens"] == ["un", "café", "très", "chaud"]
    assert data["images"][0]["sentences"][2]["tokens"] == ["東京", "の", "猫"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("images"), "expected an object with an 'images' list"),
        (lambda d: d["images"][1].update(sentences=[]), "images[1]: no sentences"),
        (lambda d: d["images"][1]["sentences"][2].update(tokens=[]), "images[1].sentences[2]: sentence has no tokens"),
        (lambda d: d["images"][0]["sentences"][0].update(tokens=["a", 3]),
         "images[0].sentences[0]: tokens[1] is not a string (got int 3)"),
        (lambda d: d["images"][1]["sentences"][1].update(tokens=["a", "", "b"]), "images[1].sentences[1]: tokens[1] is blank ('')"),
        (lambda d: d["images"][1]["sentences"][1].update(tokens=[" "]), "images[1].sentences[1]: tokens[0] is blank (' ')"),
        (lambda d: d["images"][4].update(imgid=1), "images[4]: imgid 1 repeats that of images[1]"),
        (lambda d: d["images"][4].update(imgid="4"), "images[4]: 'imgid' must be an integer, got '4'"),
        (lambda d: d["images"][5]["sentences"][3].update(sentid=2),
         "images[5].sentences[3]: sentid 2 repeats that of images[0].sentences[2]"),
        (lambda d: d["images"][2].update(split="holdout"), "images[2]: unknown split 'holdout'"),
        (lambda d: d["images"][3].update(filename="missing.png"), "missing.png: image file not found"),
        (lambda d: d["images"][3].update(filepath="../../etc"), "images[3]: path ../../etc/3.png escapes the images folder"),
        (lambda d: d["images"][3].pop("filename"), "images[3]: missing 'filename'"),
        (lambda d: d["images"].__setitem__(0, "x"), "images[0]: expected an object, got str"),
    ],
)
def test_bad_dataset_names_the_problem(karpathy: tuple[Path, Path], change: Callable[[dict[str, Any]], None], message: str) -> None:
    path, root = karpathy
    mutate(path, change)
    with pytest.raises(InputError) as e:
        load_karpathy(path, root, "train")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_not_json_and_unreadable_image(karpathy: tuple[Path, Path]) -> None:
    path, root = karpathy
    (root / "sub" / "1.png").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match=r"sub/1.png: cannot read image"):
        load_karpathy(path, root, "train")
    path.write_text("[{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_karpathy(path, root, "train")
