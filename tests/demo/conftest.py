"""A tiny checkout for the demo: the alignment tests' generated world (images, captions, true objects) with
real regions extracted by a tiny region CNN, and untrained (seeded) captioner, region captioner and alignment
model files, laid out as the pipeline lays them out (models/, data/)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsa.align.checkpoint import MODEL_FORMAT as ALIGNMENT_FORMAT
from dvsa.align.config import AlignmentParams
from dvsa.align.model import AlignmentModel
from dvsa.caption.checkpoint import save_checkpoint
from dvsa.caption.model import Captioner
from dvsa.checkpoint import save
from dvsa.data.dataset import image_path
from dvsa.data.images import load_rgb
from dvsa.demo.command import paths_under
from dvsa.demo.models import DemoPaths
from dvsa.features import GEOMETRY_DIM
from dvsa.regions.checkpoint import save_region_cnn
from dvsa.regions.config import NetParams, RegionsParams, ShapesParams
from dvsa.regions.extract import extract_regions
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.regions.store import RegionWriter
from tests.align.conftest import make_world

FC7 = 24


def save_alignment(path: Path, vocab: dict[int, str], seed: int) -> None:
    """An untrained alignment model file, weights drawn with `seed`."""
    torch.manual_seed(seed)
    p = AlignmentParams(hidden_size=16, word_embedding_size=8)
    model = AlignmentModel(len(vocab), FC7, p)
    save(path, ALIGNMENT_FORMAT, {"state_dict": model.state_dict(), "params": p.to_dict(),
                                  "vocab": {str(k): w for k, w in vocab.items()}, "features": {"dim": FC7,
                                  "geometry": False}, "iteration": 0, "epoch": 0, "val": {}})


def save_captioner(path: Path, vocab: dict[int, str], image: str) -> None:
    """An untrained captioner (`image` "regions": attention over the regions; "whole": the region captioner)
    whose output bias makes a few words before END."""
    model = Captioner(len(vocab), FC7 + GEOMETRY_DIM, image, "lstm", rnn_size=8, input_encoding_size=8, att_size=8)
    with torch.no_grad():
        model.logit.bias.copy_(torch.linspace(3.0, -3.0, len(vocab) + 1))
        model.logit.bias[0] = -2.0
    save_checkpoint(path, {"state_dict": model.state_dict(), "config": model.config,
                           "features": {"dim": FC7, "geometry": True}, "params": {"region_geometry": True},
                           "vocab": {str(k): w for k, w in vocab.items()}, "max_length": 8})


def make_checkout(root: Path) -> Path:
    """models/ and data/ of a checkout under `root`, and its params.yaml."""
    torch.manual_seed(0)
    world = make_world(root / "world", n_train=12, n_val=4, n_test=8)
    paths = paths_under(root, root / "cache")
    for p in (paths.labels, paths.regions, paths.dataset, paths.captioner):
        p.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(world.labels_h5, paths.labels)
    shutil.copy(world.vocab_json, paths.vocab)
    shutil.copy(world.dataset_json, paths.dataset)
    net = NetParams(input_size=32, channels=[4, 4, 4, 4], fc6_dim=16, fc7_dim=FC7)
    cnn = ShapesRegionCNN(net, ["red circle"])
    save_region_cnn(cnn, RegionsParams(shapes=ShapesParams(net=net)), paths.region_cnn)
    images = [load_rgb(image_path(world.dataset["image_root"], im)) for im in world.dataset["images"]]
    r = extract_regions(cnn, images)
    with RegionWriter(paths.regions, len(images), FC7, "float32") as w:
        w.append(r.feats, r.boxes, r.scores, r.n_regions, np.arange(len(images)))
    vocab = world.labels.ix_to_word
    save_captioner(paths.captioner, vocab, "regions")
    save_captioner(paths.region_captioner, vocab, "whole")
    save_alignment(paths.alignment, vocab, seed=1)
    paths.params.write_text("evaluate:\n  alignment:\n    beta: 1.0\n")
    return root


@pytest.fixture(scope="session")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkout(tmp_path_factory.mktemp("demo_checkout"))


@pytest.fixture
def paths(checkout: Path, tmp_path: Path) -> DemoPaths:
    """The checkout's files, with a cache folder of the test's own."""
    return paths_under(checkout, tmp_path / "cache")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
