"""Karpathy-split dataset json (dataset_coco.json / dataset_flickr8k.json / dataset_flickr30k.json).

``load_karpathy`` validates a user's file and its images and returns the normalised dataset that the
`dataset` stage writes as data/dataset/dataset.json; ``load_dataset`` reads that normalised file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dvsa.data.images import check_image
from dvsa.data.vocab import tokenize
from dvsa.errors import InputError
from dvsa.io import read_json

SPLITS = ("train", "val", "test", "restval")


def image_path(image_root: str | os.PathLike[str], image: dict[str, Any]) -> Path:
    """The file of `image` under `image_root`: root / filepath / filename."""
    return Path(image_root) / image.get("filepath", "") / image["filename"]


def load_karpathy(json_path: str | os.PathLike[str], image_root: str | os.PathLike[str], restval_to: str) -> dict[str, Any]:
    """Validate a Karpathy-split json and its images; return the normalised dataset.

    `restval_to` is where ``restval`` images go: train, val, test or drop.
    """
    data = read_json(json_path)
    where = str(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{where}: expected an object with an 'images' list")
    root = Path(image_root)
    if not root.is_dir():
        raise InputError(f"{root}: images folder not found (set dataset.karpathy.images in params.yaml)")
    images = []
    first_imgid: dict[int, int] = {}  # imgid -> index of the image that has it
    first_sentid: dict[Any, str] = {}  # sentid -> where it was first seen
    for k, image in enumerate(tqdm(data["images"], desc="validate", unit="img")):
        image = _validate_image(image, k, f"{where}: images[{k}]", root)
        _check_unique_ids(image, k, where, first_imgid, first_sentid)
        if image["split"] == "restval":
            if restval_to == "drop":
                continue
            image["split"] = restval_to
        images.append(image)
    if not images:
        raise InputError(f"{where}: no images")
    return {"dataset": data.get("dataset", Path(json_path).stem), "image_root": str(root), "images": images}


def _check_unique_ids(
    image: dict[str, Any], k: int, where: str, first_imgid: dict[int, int], first_sentid: dict[Any, str]
) -> None:
    """imgid is unique over the file's images and sentid (when given) over all its sentences, as in Karpathy's."""
    imgid = image["imgid"]
    if imgid in first_imgid:
        raise InputError(f"{where}: images[{k}]: imgid {imgid} repeats that of images[{first_imgid[imgid]}]")
    first_imgid[imgid] = k
    for j, sentence in enumerate(image["sentences"]):
        sentid = sentence["sentid"]
        if sentid is None:
            continue
        if sentid in first_sentid:
            raise InputError(f"{where}: images[{k}].sentences[{j}]: sentid {sentid!r} repeats that of {first_sentid[sentid]}")
        first_sentid[sentid] = f"images[{k}].sentences[{j}]"


def load_dataset(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the normalised data/dataset/dataset.json written by the `dataset` stage."""
    data = read_json(path)
    if not isinstance(data, dict) or "images" not in data or "image_root" not in data:
        raise InputError(f"{path}: not a dataset.json written by the dataset stage (run `dvc repro dataset`)")
    return data


def _validate_image(image: Any, index: int, where: str, root: Path) -> dict[str, Any]:
    if not isinstance(image, dict):
        raise InputError(f"{where}: expected an object, got {type(image).__name__}")
    for key in ("filename", "split", "sentences"):
        if key not in image:
            raise InputError(f"{where}: missing '{key}'")
    filename, filepath = image["filename"], image.get("filepath", "")
    if not isinstance(filename, str) or not filename or not isinstance(filepath, str):
        raise InputError(f"{where}: 'filename' and 'filepath' must be strings")
    if image["split"] not in SPLITS:
        raise InputError(f"{where}: unknown split {image['split']!r} (expected one of {', '.join(SPLITS)})")
    path = image_path(root, image)
    if not path.resolve().is_relative_to(root.resolve()):
        raise InputError(f"{where}: path {filepath}/{filename} escapes the images folder {root}")
    sentences = image["sentences"]
    if not isinstance(sentences, list) or not sentences:
        raise InputError(f"{where}: no sentences")
    check_image(path)
    imgid = image.get("imgid", index)
    for key, value in (("imgid", imgid), ("cocoid", image.get("cocoid", 0))):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"{where}: '{key}' must be an integer, got {value!r}")
    out = {
        "filepath": filepath,
        "filename": filename,
        "imgid": imgid,
        "split": image["split"],
        "sentids": image.get("sentids", [s.get("sentid") for s in sentences if isinstance(s, dict)]),
        "sentences": [_validate_sentence(s, f"{where}.sentences[{j}]", imgid) for j, s in enumerate(sentences)],
    }
    if "cocoid" in image:
        out["cocoid"] = image["cocoid"]
    return out


def _validate_sentence(sentence: Any, where: str, imgid: Any) -> dict[str, Any]:
    if not isinstance(sentence, dict):
        raise InputError(f"{where}: expected an object, got {type(sentence).__name__}")
    tokens = sentence.get("tokens")
    raw = sentence.get("raw")
    if tokens is None:
        if not isinstance(raw, str):
            raise InputError(f"{where}: neither 'tokens' nor 'raw'")
        tokens = tokenize(raw)
    if not isinstance(tokens, list):
        raise InputError(f"{where}: 'tokens' must be a list of strings")
    for j, t in enumerate(tokens):
        if not isinstance(t, str):
            raise InputError(f"{where}: tokens[{j}] is not a string (got {type(t).__name__} {t!r})")
        if not t.strip():
            raise InputError(f"{where}: tokens[{j}] is blank ({t!r})")
    if not tokens:
        raise InputError(f"{where}: sentence has no tokens")
    return {"tokens": tokens, "raw": raw if isinstance(raw, str) else " ".join(tokens), "imgid": imgid,
            "sentid": sentence.get("sentid")}
