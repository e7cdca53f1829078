"""Region references of the shapes world: true of their object, in val and test only, and never read by
training (the labels and the detector's targets are the same without them; only the evaluation names the key)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest

from dvsa.data.config import PreprocessParams, ShapesParams
from dvsa.data.prepro import build_labels
from dvsa.data.shapes import generate, make_scene
from dvsa.data.shapes_references import DESCRIPTIONS_KEY, N_DESCRIPTIONS
from dvsa.data.vocab import tokenize
from dvsa.metrics.truth import judge
from dvsa.regions.data import image_records
from tests.conftest import REPO

PARAMS = ShapesParams(n_train=6, n_val=3, n_test=3, image_size=64)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("shapes")
    data = generate(root, PARAMS, seed=5)
    data["image_root"] = str(root / "images")
    return data


def test_val_and_test_objects_have_true_distinct_descriptions(dataset: dict) -> None:
    for i, im in enumerate(dataset["images"]):
        assert [s["raw"] for s in im["sentences"]] == make_scene(5, i, PARAMS).captions  # the world is unchanged
        for obj in im["objects"]:
            if im["split"] == "train":
                assert DESCRIPTIONS_KEY not in obj
                continue
            phrases = obj[DESCRIPTIONS_KEY]
            assert len(phrases) == len(set(phrases)) == N_DESCRIPTIONS
            for phrase in phrases:
                j = judge(tokenize(phrase), [obj], None)  # true of the object alone
                assert j.true and any(c.kind == "mention" for c in j.claims), phrase


def _without_references(dataset: dict) -> dict:
    out = copy.deepcopy(dataset)
    for im in out["images"]:
        for obj in im["objects"]:
            obj.pop(DESCRIPTIONS_KEY, None)
    return out


def test_training_inputs_are_the_same_without_references(dataset: dict) -> None:
    bare = _without_references(dataset)
    assert bare != dataset
    (with_refs, _), (without, _) = build_labels(dataset, PreprocessParams()), build_labels(bare, PreprocessParams())
    assert np.array_equal(with_refs.labels, without.labels) and with_refs.ix_to_word == without.ix_to_word
    assert with_refs.images == without.images
    for a, b in zip(image_records(dataset), image_records(bare)):
        assert np.array_equal(a.boxes, b.boxes) and a.labels == b.labels and a.path == b.path


def test_only_the_generator_and_the_evaluation_name_the_key() -> None:
    pattern = re.compile(rf"DESCRIPTIONS_KEY|[\"']{DESCRIPTIONS_KEY}[\"']")
    naming = {
        str(p.relative_to(REPO))
        for folder in ("src", "stages")
        for p in (REPO / folder).rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
    }
    assert naming == {
        "src/dvsa/data/shapes_references.py",
        "src/dvsa/data/shapes.py",
        "src/dvsa/regiondesc/references.py",
    }
    for stage in (
        "preprocess",
        "region_cnn",
        "regions",
        "train_alignment",
        "train_captioner",
        "region_snippets",
        "train_region_captioner",
    ):
        text = Path(REPO / "stages" / f"{stage}.py").read_text(encoding="utf-8")
        assert "regiondesc.references" not in text and "shapes_references" not in text
