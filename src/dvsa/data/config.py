"""Params of the `dataset` and `preprocess` stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ShapesParams:
    """The generated shapes world."""

    n_train: int = field(default=1500, metadata={"min": 1})
    n_val: int = field(default=200, metadata={"min": 1})
    n_test: int = field(default=200, metadata={"min": 1})
    n_train_extra: int = field(default=0, metadata={"min": 0})  # more train images, after the test ones: val and test stay
    image_size: int = field(default=128, metadata={"min": 48, "max": 1024})
    min_objects: int = field(default=1, metadata={"min": 1})
    max_objects: int = field(default=4, metadata={"min": 1, "max": 6})
    captions_per_image: int = field(default=5, metadata={"min": 1})


@dataclass
class KarpathyParams:
    """A user's Karpathy-split json (dataset_coco.json, dataset_flickr8k.json, ...) and its images."""

    json: str = ""
    images: str = ""
    restval_to: Literal["train", "val", "test", "drop"] = "train"


@dataclass
class CocoParams:
    """COCO's own caption files (captions_train2014.json, ...) and images, with a Karpathy split."""

    annotations: list[str] = field(default_factory=list)  # captions_<folder>.json; its images are in images/<folder>/
    images: str = ""  # the folder that holds train2014/, val2014/
    split_file: str = ""  # dataset_coco.json (its cocoid + split per image); "": val_size / test_size at random
    val_size: int = field(default=5000, metadata={"min": 0})  # without a split file; the seed is dataset.seed
    test_size: int = field(default=5000, metadata={"min": 0})
    restval_to: Literal["train", "val", "test", "drop"] = "train"  # with a split file


@dataclass
class DatasetParams:
    source: Literal["shapes", "karpathy", "coco"] = "shapes"
    seed: int = 123
    shapes: ShapesParams = field(default_factory=ShapesParams)
    karpathy: KarpathyParams = field(default_factory=KarpathyParams)
    coco: CocoParams = field(default_factory=CocoParams)


@dataclass
class PreprocessParams:
    word_count_threshold: int = field(default=5, metadata={"min": 0})
    max_length: int = field(default=16, metadata={"min": 1})
