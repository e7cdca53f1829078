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
class DatasetParams:
    source: Literal["shapes", "karpathy"] = "shapes"
    seed: int = 123
    shapes: ShapesParams = field(default_factory=ShapesParams)
    karpathy: KarpathyParams = field(default_factory=KarpathyParams)


@dataclass
class PreprocessParams:
    word_count_threshold: int = field(default=5, metadata={"min": 0})
    max_length: int = field(default=16, metadata={"min": 1})
