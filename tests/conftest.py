"""Shared fixtures: tiny Karpathy-format datasets written into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def write_karpathy(root: Path, n_images: int = 6, sentences: list[str] | None = None) -> tuple[Path, Path]:
    """A small valid dataset_xxx.json with PNG images; returns (json path, images folder)."""
    images_dir = root / "images"
    (images_dir / "sub").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sentences = sentences or ["A red circle.", "The red circle is small!", "a circle , red", "red", "one circle"]
    images: list[dict[str, Any]] = []
    sentid = 0
    for i in range(n_images):
        Image.fromarray(rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)).save(images_dir / "sub" / f"{i}.png")
        sents = []
        for raw in sentences:
            sents.append({"raw": raw, "tokens": [t for t in raw.lower().replace(",", " ").replace(".", " ").replace("!", " ").split()], "imgid": i, "sentid": sentid})
            sentid += 1
        split = ["train", "train", "restval", "val", "test", "test"][i % 6]
        images.append({"filepath": "sub", "filename": f"{i}.png", "imgid": i, "cocoid": 1000 + i, "split": split,
                       "sentids": [s["sentid"] for s in sents], "sentences": sents})
    path = root / "dataset_tiny.json"
    path.write_text(json.dumps({"dataset": "tiny", "images": images}))
    return path, images_dir


@pytest.fixture
def karpathy(tmp_path: Path) -> tuple[Path, Path]:
    return write_karpathy(tmp_path)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository on the tiny configuration after `dvc repro`, built once for the end-to-end
    tests (test_pipeline.py, test_remote.py); a test that changes it restores it, or works on a copy."""
    from tests.project import TINY, copy_project, dvc  # tests.project imports REPO from this module

    root = copy_project(tmp_path_factory.mktemp("project"), TINY)
    dvc(root, "repro")
    return root
