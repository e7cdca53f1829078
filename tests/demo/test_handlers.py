"""The demo's handlers: upload checks with a message naming the file, truth marks only on images whose
objects are known, and requests served at once giving what they give one at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dvsa.data.images import load_rgb
from dvsa.demo import handlers
from dvsa.demo.models import DemoModels, DemoPaths, load_models


@pytest.fixture
def models(paths: DemoPaths) -> DemoModels:
    return load_models(paths, "test")[0]


def test_uploads_too_large_not_an_image_or_unreadable_are_named(tmp_path: Path, models: DemoModels) -> None:
    good = models.examples()[0]
    assert handlers.read_upload(good, 10**6).size == load_rgb(good).size
    with pytest.raises(handlers.UploadError, match=rf"{good.name}: 0\.0 MB, over the upload limit of 1e-05 MB"):
        handlers.read_upload(good, 10)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(handlers.UploadError, match=r"notes.txt: not an image file \(expected one of .png"):
        handlers.read_upload(text, 10**6)
    fake = tmp_path / "fake.png"
    fake.write_text("hello")
    with pytest.raises(handlers.UploadError, match=r"^fake.png: not a readable image"):
        handlers.read_upload(fake, 10**6)
    with pytest.raises(handlers.UploadError, match="no image"):
        handlers.read_upload(None, 10**6)


def test_truth_marks_only_on_an_image_whose_objects_are_known(models: DemoModels) -> None:
    known = handlers.caption(models, load_rgb(models.examples()[0]))
    assert "Judged against the image's true objects" in known.html
    assert known.html.count("✓") + known.html.count("✗") == 2  # the verdict and the legend's ✓
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    unknown = handlers.caption(models, noise)
    assert "Judged" not in unknown.html and "✗" not in unknown.html
    assert unknown.html.count("<span") == len(unknown.caption.split()) > 0  # each word in its region's colour
    assert unknown.figure.height > noise.height  # drawn, with the caption strip


def _request(models: DemoModels, k: int) -> tuple[str, bytes, list[int], list[str]]:
    image = load_rgb(models.examples()[k % len(models.examples())])
    c = handlers.caption(models, image)
    d = handlers.describe(models, image, 0.0)
    s = handlers.search_images(models, ["a red circle", "a blue square", "green", "a yellow triangle"][k % 4], 3)
    return c.caption, c.figure.tobytes() + d.figure.tobytes(), [h.row for h in s.hits], [
        h.sentence for h in handlers.search_sentences(models, image, 3)
    ]


def test_requests_at_once_do_not_mix(models: DemoModels) -> None:
    one_at_a_time = [_request(models, k) for k in range(8)]
    with ThreadPoolExecutor(4) as pool:
        at_once = list(pool.map(lambda k: _request(models, k), range(8)))
    assert at_once == one_at_a_time
    assert len({r[1] for r in one_at_a_time}) == 8  # every request differs, so a mix would show
