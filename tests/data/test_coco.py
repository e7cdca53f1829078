"""COCO's own caption files (pycocotools) + a Karpathy split -> the normalised dataset of load_karpathy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dvsa.data.coco import load_coco
from dvsa.data.config import CocoParams
from dvsa.data.dataset import image_path, load_karpathy
from dvsa.data.vocab import tokenize
from dvsa.errors import InputError, ParamsError
from tests.conftest import REPO

FOLDERS = ("train2014", "val2014")
N_PER_FOLDER = 6
# the split file's order and splits: val2014's images first, as in Karpathy's dataset_coco.json
SPLIT_OF = {"val2014": ["test", "test", "val", "val", "restval", "restval"], "train2014": ["train"] * N_PER_FOLDER}

Coco = tuple[list[Path], Path, Path]  # annotation files, images folder, split file


def write_coco(root: Path) -> Coco:
    """captions_train2014.json + captions_val2014.json with PNGs under images/<folder>/, and a split file in
    Karpathy's full dataset_coco.json format; returns (annotation files, images folder, split file)."""
    rng = np.random.default_rng(0)
    images_dir = root / "images"
    annotation_files, split_images = [], []
    ann_id = 500
    for f, folder in enumerate(FOLDERS):
        (images_dir / folder).mkdir(parents=True)
        images, annotations = [], []
        for i in range(N_PER_FOLDER):
            cocoid = 1000 * (f + 1) + 7 * i  # not in file order once sorted: 1000, 1007, ... 2000, ...
            name = f"COCO_{folder}_{cocoid:012d}.png"
            Image.fromarray(rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)).save(images_dir / folder / name)
            images.append({"id": cocoid, "file_name": name, "width": 30, "height": 20 + i, "license": 1})
            for j in range(3):
                annotations.append({"id": ann_id, "image_id": cocoid, "caption": f"A Red circle, number {i}.{j}! \n"})
                ann_id += 1
        path = root / f"captions_{folder}.json"
        path.write_text(json.dumps({"info": {}, "licenses": [], "images": images, "annotations": annotations}))
        annotation_files.append(path)
        split_images.append((folder, images, annotations))
    karpathy: list[dict[str, Any]] = []
    for folder, images, annotations in reversed(split_images):
        for image, split in zip(images, SPLIT_OF[folder]):
            sents = [{"raw": a["caption"].strip(), "sentid": a["id"], "imgid": len(karpathy)}
                     for a in annotations if a["image_id"] == image["id"]]
            karpathy.append({"filepath": folder, "filename": image["file_name"], "imgid": len(karpathy),
                             "cocoid": image["id"], "split": split, "sentids": [s["sentid"] for s in sents],
                             "sentences": sents})
    split_file = root / "dataset_coco.json"
    split_file.write_text(json.dumps({"dataset": "coco", "images": karpathy}))
    return annotation_files, images_dir, split_file


@pytest.fixture
def coco(tmp_path: Path) -> Coco:
    return write_coco(tmp_path)


def params(coco: Coco, split_file: bool = True, **kw: Any) -> CocoParams:
    annotations, images, split = coco
    return CocoParams(annotations=[str(a) for a in annotations], images=str(images),
                      split_file=str(split) if split_file else "", **kw)


def test_split_file_gives_load_karpathys_dataset(coco: Coco, capsys: pytest.CaptureFixture[str]) -> None:
    data = load_coco(params(coco), seed=0)
    assert "index" not in capsys.readouterr().out  # pycocotools' "creating index..." kept out
    _, images, split = coco
    assert data["dataset"] == "coco" and data["image_root"] == str(images)
    # the split file in Karpathy's format, read by load_karpathy: the same images, keys, tokens, ids
    assert data["images"] == load_karpathy(split, images, "train")["images"]
    first = data["images"][0]
    assert first["filepath"] == "val2014" and first["cocoid"] == 2000 and first["split"] == "test"
    assert first["sentids"] == [518, 519, 520] and first["sentences"][0]["raw"] == "A Red circle, number 0.0!"
    tokens = ["a", "red", "circle", "number", "0", "0"]
    assert first["sentences"][0]["tokens"] == tokenize("A Red circle, number 0.0!") == tokens
    assert all(image_path(images, im).is_file() for im in data["images"])


@pytest.mark.parametrize(("restval_to", "n_train", "n_val"), [("train", 8, 2), ("val", 6, 4), ("drop", 6, 2)])
def test_restval(coco: Coco, restval_to: str, n_train: int, n_val: int) -> None:
    data = load_coco(params(coco, restval_to=restval_to), seed=0)
    splits = [im["split"] for im in data["images"]]
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (n_train, n_val, 2)
    assert len(data["images"]) == n_train + n_val + 2
    restval = {2000 + 7 * 4, 2000 + 7 * 5}
    kept = {im["cocoid"]: im["split"] for im in data["images"]}
    assert all(kept.get(c) == (None if restval_to == "drop" else restval_to) for c in restval)
    assert [im["imgid"] for im in data["images"]] == sorted(im["imgid"] for im in data["images"])


def test_split_file_may_list_fewer_images(coco: Coco, capsys: pytest.CaptureFixture[str]) -> None:
    split = coco[2]
    full = json.loads(split.read_text())
    split.write_text(json.dumps({"images": full["images"][:5]}))
    data = load_coco(params(coco), seed=0)
    assert [im["cocoid"] for im in data["images"]] == [im["cocoid"] for im in full["images"][:5]]
    assert "7 image(s) of the annotation files are not in this split file: left out" in capsys.readouterr().out


def test_seeded_split(coco: Coco) -> None:
    sized = params(coco, split_file=False, val_size=3, test_size=2)
    data = load_coco(sized, seed=5)
    splits = {im["cocoid"]: im["split"] for im in data["images"]}
    assert sorted(splits.values()) == ["test"] * 2 + ["train"] * 7 + ["val"] * 3
    # the annotation files' order: train2014's images, then val2014's
    assert [im["cocoid"] for im in data["images"]] == [f * 1000 + 7 * i for f in (1, 2) for i in range(6)]
    assert load_coco(sized, seed=5) == data  # deterministic
    assert {im["cocoid"]: im["split"] for im in load_coco(sized, seed=6)["images"]} != splits
    # the draw depends on the seed, not on the order of the annotation files
    swapped = params(coco, split_file=False, val_size=3, test_size=2)
    swapped.annotations.reverse()
    assert {im["cocoid"]: im["split"] for im in load_coco(swapped, seed=5)["images"]} == splits
    everything = load_coco(params(coco, split_file=False, val_size=0, test_size=0), seed=5)["images"]
    assert {im["split"] for im in everything} == {"train"}


def test_seeded_split_larger_than_the_data(coco: Coco) -> None:
    with pytest.raises(ParamsError, match=r"dataset.coco.val_size \+ test_size = 13 exceeds the 12 images"):
        load_coco(params(coco, split_file=False, val_size=7, test_size=6), seed=0)


def edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def val_file(coco: Coco) -> Path:
    return coco[0][1]


def renumber_image(old: int, new: int) -> Callable[[dict[str, Any]], None]:
    """Give image `old` of an annotation file the id `new`, its captions too."""
    def change(d: dict[str, Any]) -> None:
        d["images"] = [{**im, "id": new} if im["id"] == old else im for im in d["images"]]
        d["annotations"] = [{**a, "image_id": new} if a["image_id"] == old else a for a in d["annotations"]]
    return change


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda c: val_file(c).unlink(), "captions_val2014.json: file not found"),
        (lambda c: val_file(c).write_text("{oops"), "captions_val2014.json: not valid JSON"),
        (lambda c: val_file(c).write_text(c[2].read_text()),  # a Karpathy json given as annotations
         "captions_val2014.json: not a COCO annotation file (expected an object with 'images' and 'annotations'"),
        (lambda c: edit_json(val_file(c), lambda d: [a.pop("caption") for a in d["annotations"]]),  # instances_*.json
         "captions_val2014.json: annotations[0]: no 'caption' string"),
        (lambda c: edit_json(val_file(c), lambda d: d["annotations"][4].update(image_id=99)),
         "captions_val2014.json: annotations[4]: image_id 99 is not among the file's images"),
        (lambda c: edit_json(val_file(c), lambda d: d["images"][3].update(id="2021")),
         "captions_val2014.json: images[3]: expected an object with an integer 'id' and a string 'file_name'"),
        (lambda c: edit_json(val_file(c), lambda d: d["images"][3].update(id=2007)),
         "captions_val2014.json: images[3]: id 2007 repeats that of images[1]"),
        (lambda c: edit_json(val_file(c), renumber_image(2021, 1007)),
         "captions_val2014.json: images[3]: id 1007 is also in "),  # ... captions_train2014.json
        (lambda c: edit_json(val_file(c), lambda d: d["annotations"][0].update(id=501)),
         "captions_val2014.json: annotations[0]: id 501 is also in "),  # ... captions_train2014.json
        (lambda c: edit_json(val_file(c), lambda d: d["annotations"][5].update(id=518)),
         "captions_val2014.json: annotations[5]: id 518 repeats that of annotations[0]"),
        (lambda c: edit_json(val_file(c), lambda d: d.update(annotations=d["annotations"][3:])),
         "captions_val2014.json: images[0] (id 2000): no sentences"),
        (lambda c: edit_json(val_file(c), lambda d: d["annotations"][2].update(caption=" ?! ")),
         "captions_val2014.json: images[0] (id 2000).sentences[2]: sentence has no tokens"),
        (lambda c: (c[1] / "val2014" / "COCO_val2014_000000002014.png").unlink(),
         "val2014/COCO_val2014_000000002014.png: image file not found"),
        (lambda c: edit_json(val_file(c), lambda d: d["images"][1].update(file_name="../../x.png")),
         "captions_val2014.json: images[1] (id 2007): path val2014/../../x.png escapes the images folder"),
        (lambda c: edit_json(c[2], lambda d: d["images"][3].update(cocoid=77)),
         "dataset_coco.json: images[3]: cocoid 77 is in none of the annotation files"),
        (lambda c: edit_json(c[2], lambda d: d["images"][3].update(cocoid=2000)),
         "dataset_coco.json: images[3]: cocoid 2000 repeats that of images[0]"),
        (lambda c: edit_json(c[2], lambda d: d["images"][3].update(split="dev")),
         "dataset_coco.json: images[3]: unknown split 'dev' (expected one of train, val, test, restval)"),
        (lambda c: edit_json(c[2], lambda d: d.pop("images")),
         "dataset_coco.json: expected an object with an 'images' list"),
        (lambda c: c[2].unlink(), "dataset_coco.json: file not found"),
    ],
)
def test_bad_input_names_the_file_and_the_problem(
    coco: Coco, corrupt: Callable[[Coco], None], message: str
) -> None:
    p = params(coco)
    corrupt(coco)
    with pytest.raises(InputError) as e:
        load_coco(p, seed=0)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_annotation_file_name_says_the_images_folder(coco: Coco) -> None:
    p = params(coco)
    renamed = val_file(coco).rename(val_file(coco).with_name("val_captions.json"))
    p.annotations[1] = str(renamed)
    with pytest.raises(InputError, match=r"val_captions.json: expected a COCO caption file named captions_<folder>"):
        load_coco(p, seed=0)


def test_images_folder_missing(coco: Coco) -> None:
    p = params(coco)
    p.images = str(Path(p.images) / "nope")
    with pytest.raises(InputError, match=r"nope: images folder not found \(set dataset.coco.images in params.yaml\)"):
        load_coco(p, seed=0)


def run_dataset_stage(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, str(REPO / "stages" / "dataset.py")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_dataset_stage_with_source_coco(tmp_path: Path) -> None:
    annotations, images, split = write_coco(tmp_path / "coco")
    (tmp_path / "params.yaml").write_text(
        "dataset:\n  source: coco\n  coco:\n"
        f"    annotations: [{annotations[0]}, {annotations[1]}]\n    images: {images}\n    split_file: {split}\n"
    )
    result = run_dataset_stage(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "dataset coco: 12 images ({'train': 8, 'val': 2, 'test': 2})\n"  # nothing from pycocotools
    data = json.loads((tmp_path / "data/dataset/dataset.json").read_text())
    assert data["images"] == load_karpathy(split, images, "train")["images"]
    edit_json(annotations[0], lambda d: d["annotations"][0].pop("caption"))
    result = run_dataset_stage(tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {annotations[0]}: annotations[0]: no 'caption' string (not a captions_*.json file?)"]
    assert "Traceback" not in result.stderr
    (tmp_path / "params.yaml").write_text("dataset:\n  source: coco\n")
    result = run_dataset_stage(tmp_path)
    assert "error: params.yaml: dataset.coco.annotations and dataset.coco.images must be set" in result.stderr
