"""The shapes world: a generated Karpathy-split dataset of coloured shapes on textured backgrounds.

Each image holds `min_objects`..`max_objects` non-overlapping shapes (shapes_scene), drawn on a
noisy striped or blotchy background (shapes_render), with `captions_per_image` sentences from a
small grammar that are true of the scene (shapes_grammar). Image i depends only on (seed, i): the
`n_train` train images come first, then val, test and the `n_train_extra` train images, so a larger train
split (a data-scaling ablation) is scored on the same val and test images.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dvsa.data.config import ShapesParams
from dvsa.data.shapes_grammar import captions
from dvsa.data.shapes_references import DESCRIPTIONS_KEY, REFERENCE_SPLITS, region_descriptions
from dvsa.data.shapes_render import BACKGROUNDS, render
from dvsa.data.shapes_scene import ShapeObject, sample_scene
from dvsa.data.vocab import tokenize
from dvsa.errors import ParamsError


@dataclass(frozen=True)
class Scene:
    image: Image.Image
    objects: list[ShapeObject]
    background: str
    captions: list[str]


def make_scene(seed: int, index: int, params: ShapesParams) -> Scene:
    """Image `index` of the world with this seed: objects, background, rendering, captions."""
    rng = np.random.default_rng([seed % 2**64, index])
    n_objects = int(rng.integers(params.min_objects, params.max_objects + 1))
    objects = sample_scene(rng, n_objects, params.image_size)
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    image = render(objects, background, params.image_size, rng)
    sentences = captions(objects, background, params.captions_per_image, random.Random(int(rng.integers(2**63))))
    return Scene(image, objects, background, sentences)


def generate(out_dir: Path, params: ShapesParams, seed: int) -> dict:
    """Write out_dir/images/NNNNNN.png and return the Karpathy-format dataset dict (train, val, test).

    Each image entry also carries its true "objects" (box, label, colour, shape, size; in val and test
    images also their region references, "descriptions") and its "background" kind: ground truth for
    detector training and evaluation only.
    """
    if params.min_objects > params.max_objects:
        raise ParamsError(
            f"dataset.shapes.min_objects ({params.min_objects}) is greater than "
            f"dataset.shapes.max_objects ({params.max_objects})"
        )
    images_dir = Path(out_dir) / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    splits = (["train"] * params.n_train + ["val"] * params.n_val + ["test"] * params.n_test
              + ["train"] * params.n_train_extra)  # image i is (seed, i): extra train images leave val and test be
    images = []
    sentid = 0
    for imgid, split in enumerate(tqdm(splits, desc="shapes world", unit="img")):
        scene = make_scene(seed, imgid, params)
        filename = f"{imgid:06d}.png"
        scene.image.save(images_dir / filename, format="PNG")
        sentids = list(range(sentid, sentid + len(scene.captions)))
        sentid += len(sentids)
        images.append({
            "filepath": "",
            "filename": filename,
            "imgid": imgid,
            "split": split,
            "sentids": sentids,
            "sentences": [
                {"tokens": tokenize(raw), "raw": raw, "imgid": imgid, "sentid": k}
                for k, raw in zip(sentids, scene.captions)
            ],
            "objects": _objects_json(scene.objects, split, seed, imgid),
            "background": scene.background,
        })
    return {"dataset": "shapes", "images": images}


REFERENCES_STREAM = 1  # the region references' own random stream: the scenes and captions stay as they were


def _objects_json(objects: list[ShapeObject], split: str, seed: int, index: int) -> list[dict]:
    """The objects of image `index`; in val and test images each with its region references (§4.3)."""
    out = [o.to_json() for o in objects]
    if split in REFERENCE_SPLITS:
        r = random.Random(int(np.random.default_rng([seed % 2**64, index, REFERENCES_STREAM]).integers(2**63)))
        for o, js in zip(objects, out):
            js[DESCRIPTIONS_KEY] = region_descriptions(o, r)
    return out
