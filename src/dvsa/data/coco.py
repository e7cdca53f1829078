"""COCO's own caption files (captions_train2014.json, captions_val2014.json) read with pycocotools' ``COCO``,
plus a Karpathy split, -> the same normalised dataset as ``load_karpathy`` (data/dataset/dataset.json).

Each annotation file ``captions_<folder>.json`` has its images in ``<images>/<folder>/`` (``filepath``
``<folder>``, ``filename`` the image's ``file_name``); ``cocoid`` is the COCO image id, ``sentid`` the caption's
annotation id, tokens come from ``dvsa.data.vocab.tokenize``. The split comes from Karpathy's
``dataset_coco.json`` (its ``cocoid`` + ``split`` per image, in its order; ``restval`` goes to ``restval_to``;
images of the annotation files that it does not list are left out), or, without a split file, ``val_size``
and ``test_size`` images drawn at random with the seed, the rest train (in the annotation files' order).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from tqdm import tqdm

from dvsa.data.config import CocoParams
from dvsa.data.dataset import SPLITS, _validate_image
from dvsa.errors import InputError, ParamsError
from dvsa.io import read_json

_ANNOTATIONS_NAME = re.compile(r"captions_(\w+)\.json")


def load_coco(p: CocoParams, seed: int) -> dict[str, Any]:
    """Validate the annotation files, the split and every image; return the normalised dataset."""
    root = Path(p.images)
    if not root.is_dir():
        raise InputError(f"{root}: images folder not found (set dataset.coco.images in params.yaml)")
    sources: dict[int, tuple[str, COCO, int]] = {}  # cocoid -> (annotation file, its COCO, index in its images)
    ann_files: dict[int, str] = {}  # annotation id -> its file (ids are unique over COCO, and become sentids)
    for path in p.annotations:
        images_folder(path)  # a name that says where its images are, before reading a large file
        coco = read_annotations(path)
        for k, image in enumerate(coco.dataset["images"]):
            if image["id"] in sources:
                raise InputError(f"{path}: images[{k}]: id {image['id']} is also in {sources[image['id']][0]}")
            sources[image["id"]] = (path, coco, k)
        for j, ann in enumerate(coco.dataset["annotations"]):
            if ann["id"] in ann_files:
                raise InputError(f"{path}: annotations[{j}]: id {ann['id']} is also in {ann_files[ann['id']]}")
            ann_files[ann["id"]] = path
    if p.split_file:
        splits = split_from_file(p.split_file, sources, p.restval_to)
    else:
        splits = random_split(list(sources), p.val_size, p.test_size, seed)
    images: list[dict[str, Any]] = []
    for imgid, (cocoid, split) in enumerate(tqdm(splits.items(), desc="validate", unit="img")):
        path, coco, k = sources[cocoid]
        record = {
            "filepath": images_folder(path),
            "filename": coco.imgs[cocoid]["file_name"],
            "imgid": imgid,
            "cocoid": cocoid,
            "split": split,
            "sentences": [{"raw": a["caption"].strip(), "sentid": a["id"]} for a in coco.imgToAnns[cocoid]],
        }
        images.append(_validate_image(record, imgid, f"{path}: images[{k}] (id {cocoid})", root))
    if not images:
        raise InputError(f"{p.split_file or ', '.join(p.annotations)}: no images")
    return {"dataset": "coco", "image_root": str(root), "images": images}


def images_folder(annotation_file: str) -> str:
    """The folder of an annotation file's images: ``captions_val2014.json`` -> ``val2014``."""
    m = _ANNOTATIONS_NAME.fullmatch(Path(annotation_file).name)
    if m is None:
        raise InputError(
            f"{annotation_file}: expected a COCO caption file named captions_<folder>.json "
            "(its images in <dataset.coco.images>/<folder>/)"
        )
    return m.group(1)


def read_annotations(path: str) -> COCO:
    """A COCO caption annotation file, checked, as a pycocotools ``COCO`` object (without its chatter)."""
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(key), list) for key in ("images", "annotations")):
        raise InputError(
            f"{path}: not a COCO annotation file (expected an object with 'images' and 'annotations' lists)"
        )
    first: dict[int, int] = {}  # image id -> its index in 'images'
    first_ann: dict[int, int] = {}  # annotation id -> its index in 'annotations'
    for k, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not _is_int(image.get("id")) or not isinstance(image.get("file_name"), str):
            raise InputError(f"{path}: images[{k}]: expected an object with an integer 'id' and a string 'file_name'")
        if image["id"] in first:
            raise InputError(f"{path}: images[{k}]: id {image['id']} repeats that of images[{first[image['id']]}]")
        first[image["id"]] = k
    for j, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not _is_int(ann.get("id")) or not _is_int(ann.get("image_id")):
            raise InputError(f"{path}: annotations[{j}]: expected an object with an integer 'id' and 'image_id'")
        if not isinstance(ann.get("caption"), str):
            raise InputError(f"{path}: annotations[{j}]: no 'caption' string (not a captions_*.json file?)")
        if ann["image_id"] not in first:
            raise InputError(f"{path}: annotations[{j}]: image_id {ann['image_id']} is not among the file's images")
        if ann["id"] in first_ann:  # pycocotools' index would keep only the last of them
            raise InputError(
                f"{path}: annotations[{j}]: id {ann['id']} repeats that of annotations[{first_ann[ann['id']]}]"
            )
        first_ann[ann["id"]] = j
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # "creating index..."
        coco.createIndex()
    return coco


def split_from_file(path: str, sources: dict[int, Any], restval_to: str) -> dict[int, str]:
    """{cocoid: split} in the order of Karpathy's split file `path`; restval becomes `restval_to` (or is dropped)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{path}: expected an object with an 'images' list (Karpathy's dataset_coco.json)")
    splits: dict[int, str] = {}
    seen: dict[int, int] = {}  # cocoid -> its index in the split file
    for k, image in enumerate(data["images"]):
        where = f"{path}: images[{k}]"
        if not isinstance(image, dict):
            raise InputError(f"{where}: expected an object, got {type(image).__name__}")
        cocoid, split = image.get("cocoid"), image.get("split")
        if not _is_int(cocoid):
            raise InputError(f"{where}: 'cocoid' must be an integer, got {cocoid!r}")
        if split not in SPLITS:
            raise InputError(f"{where}: unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        if cocoid in seen:
            raise InputError(f"{where}: cocoid {cocoid} repeats that of images[{seen[cocoid]}]")
        seen[cocoid] = k
        if cocoid not in sources:
            raise InputError(f"{where}: cocoid {cocoid} is in none of the annotation files (dataset.coco.annotations)")
        if split == "restval":
            if restval_to == "drop":
                continue
            split = restval_to
        splits[cocoid] = split
    left_out = len(sources) - len(seen)
    if left_out:
        print(f"{path}: {left_out} image(s) of the annotation files are not in this split file: left out")
    return splits


def random_split(cocoids: list[int], val_size: int, test_size: int, seed: int) -> dict[int, str]:
    """{cocoid: split} in the given order: `val_size` val and `test_size` test images drawn with `seed` (the
    draw does not depend on the order of `cocoids`), the rest train."""
    if val_size + test_size > len(cocoids):
        raise ParamsError(
            f"params.yaml: dataset.coco.val_size + test_size = {val_size + test_size} exceeds the "
            f"{len(cocoids)} images of the annotation files"
        )
    drawn = np.random.default_rng(seed).permutation(sorted(cocoids)).tolist()
    split_of = {c: "val" for c in drawn[:val_size]} | {c: "test" for c in drawn[val_size : val_size + test_size]}
    return {c: split_of.get(c, "train") for c in cocoids}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
