"""DVC stage `dataset`: the generated shapes world, a user's Karpathy-split json, or COCO's caption files with a
Karpathy split -> data/dataset/."""

from __future__ import annotations

from pathlib import Path

from dvsa.data.coco import load_coco
from dvsa.data.config import DatasetParams
from dvsa.data.dataset import load_karpathy
from dvsa.data.shapes import generate
from dvsa.errors import ParamsError
from dvsa.io import atomic_path, write_json
from dvsa.params import load_params
from dvsa.stage import run_stage

OUT = Path("data/dataset")


def main() -> None:
    params = load_params(DatasetParams, "dataset")
    with atomic_path(OUT) as tmp:
        tmp.mkdir()
        if params.source == "shapes":
            dataset = generate(tmp, params.shapes, params.seed)
            dataset["image_root"] = str(OUT / "images")
        elif params.source == "karpathy":
            k = params.karpathy
            if not k.json or not k.images:
                raise ParamsError("params.yaml: dataset.karpathy.json and dataset.karpathy.images must be set")
            dataset = load_karpathy(k.json, k.images, k.restval_to)
        else:
            if not params.coco.annotations or not params.coco.images:
                raise ParamsError("params.yaml: dataset.coco.annotations and dataset.coco.images must be set")
            dataset = load_coco(params.coco, params.seed)
        write_json(tmp / "dataset.json", dataset, indent=None)
    splits = {s: sum(im["split"] == s for im in dataset["images"]) for s in ("train", "val", "test")}
    print(f"dataset {dataset['dataset']}: {len(dataset['images'])} images ({splits})")


if __name__ == "__main__":
    run_stage(main)
