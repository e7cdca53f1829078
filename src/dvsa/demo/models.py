"""What the demo page reads, loaded once at start: the three trained models of the checkout, the data of the
split it searches, and the true objects of the dataset's images (recognised by their pixels, for the truth
marks only). Read-only after loading: a request never writes to it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dvsa.align.checkpoint import load_model
from dvsa.align.config import AlignmentParams, EvaluateAlignmentParams
from dvsa.align.model import AlignmentModel
from dvsa.align.retrieval import check_inputs
from dvsa.caption.command import ImageCaptioner
from dvsa.data.dataset import image_path, load_dataset
from dvsa.data.images import load_rgb
from dvsa.data.labels import Labels, read_labels
from dvsa.demo.index import SearchIndex, load_or_build
from dvsa.features import check_feature_dim
from dvsa.hashing import digest
from dvsa.params import load_params
from dvsa.regiondesc.command import RegionDescriber
from dvsa.regions.store import RegionStore


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/dvsa/demo (~/.cache/dvsa/demo): outside the checkout, never a DVC output."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dvsa" / "demo"


@dataclass
class DemoPaths:
    """The checkout's files the demo reads (the pipeline's outputs), relative to the working directory."""

    captioner: Path = Path("models/captioner.pt")
    region_captioner: Path = Path("models/region_captioner.pt")
    region_cnn: Path = Path("models/region_cnn.pt")
    alignment: Path = Path("models/alignment.pt")
    labels: Path = Path("data/prepro/labels.h5")
    vocab: Path = Path("data/prepro/vocab.json")
    regions: Path = Path("data/regions/regions.h5")
    dataset: Path = Path("data/dataset/dataset.json")
    params: Path = Path("params.yaml")
    cache_dir: Path = field(default_factory=default_cache_dir)


def pixel_key(image: Image.Image) -> str:
    """The digest of an RGB image's pixels (the same picture in any file format gives the same key)."""
    return digest(np.asarray(image.convert("RGB")))


@dataclass
class DemoModels:
    captioner: ImageCaptioner
    describer: RegionDescriber
    alignment: AlignmentModel
    alignment_params: AlignmentParams
    beta: float  # eq. (12), evaluate.alignment.beta of params.yaml
    word_to_ix: dict[str, int]  # the alignment model's vocabulary
    labels: Labels
    store: RegionStore
    dataset: dict[str, Any]
    index: SearchIndex
    known: dict[str, int]  # pixel_key of each searched image -> its position in the index (0..K-1)

    def image_file(self, row: int) -> Path:
        """The image file of dataset row `row`."""
        return image_path(self.dataset["image_root"], self.dataset["images"][row])

    def position_of(self, image: Image.Image) -> int | None:
        """The index position of `image` when it is one of the searched split's images (by its pixels)."""
        return self.known.get(pixel_key(image))

    def truth_of(self, image: Image.Image) -> tuple[list[dict[str, Any]], str | None] | None:
        """The true objects and background of `image` when it is one of the searched images and the dataset
        has them (the shapes world); for the truth marks only, never shown to a model."""
        position = self.position_of(image)
        if position is None:
            return None
        info = self.dataset["images"][int(self.index.image_rows[position])]
        return (info["objects"], info.get("background")) if "objects" in info else None

    def examples(self) -> list[Path]:
        """The image files of the searched split, in row order (offered as examples)."""
        return [self.image_file(int(r)) for r in self.index.image_rows]


def load_models(paths: DemoPaths, split: str, device: str = "cpu") -> tuple[DemoModels, bool]:
    """Everything the page reads; returns (models, whether the search index was built rather than read)."""
    captioner = ImageCaptioner(str(paths.captioner), str(paths.region_cnn), device)
    describer = RegionDescriber(str(paths.region_captioner), str(paths.region_cnn))
    alignment, aparams, vocab = load_model(paths.alignment)
    labels = read_labels(paths.labels, paths.vocab)
    store = RegionStore(paths.regions)
    check_inputs(labels, store, str(paths.regions))
    check_feature_dim(store.dim, captioner.region_cnn.fc7_dim, str(paths.regions), str(paths.region_cnn))
    beta = load_params(EvaluateAlignmentParams, "evaluate.alignment", paths.params).beta
    dataset = load_dataset(paths.dataset)
    index, built = load_or_build(
        alignment, aparams.score, labels, store, split, (paths.alignment, paths.labels, paths.regions), paths.cache_dir
    )
    known = {  # the examples offered: the searched split's images
        pixel_key(load_rgb(image_path(dataset["image_root"], dataset["images"][row]))): k
        for k, row in enumerate(index.image_rows.tolist())
    }
    models = DemoModels(captioner, describer, alignment, aparams, beta, {w: i for i, w in vocab.items()}, labels,
                        store, dataset, index, known)
    return models, built
