"""`dvsa demo` in headless Chromium with the browser's networking off (no host name resolves but 127.0.0.1):
the page loads, an upload gives a caption, a typed sentence gives images, a file that is no image gives the
message; no request of the page and no connection of the server leaves loopback."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.browser import find_chromium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (apt-get install -y chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("gradio") is None, reason="gradio not installed"),
]


def test_the_three_tabs_offline(checkout: Path, tmp_path: Path) -> None:
    from tests.demo import drive
    from tests.demo.cdp import Browser

    log = tmp_path / "server-net.log"
    fake = tmp_path / "holiday.png"
    fake.write_text("this is a text file, not a picture")
    image = sorted((checkout / "world" / "images").glob("*.png"))[-1]  # a test image
    with drive.serve(checkout, tmp_path / "cache", log) as url:
        b = Browser()
        try:
            drive.load(b, url)
            assert "Deep visual-semantic alignments" in drive.body_text(b)
            words = drive.caption(b, image).split()
            assert words and words[-1] in ("✓", "✗")  # a caption, judged: a test image's objects are known
            assert drive.search(b, "a red circle and a blue square") == 6
            assert "Not in the vocabulary" not in drive.body_text(b)
            drive.open_tab(b, "Describe")
            b.upload("#describe-upload input[type=file]", fake)
            b.wait("document.body.innerText.includes('holiday.png: not a readable image')")
            outside = [u for u in b.requests if not u.startswith((url, "data:", "blob:"))]
            assert b.requests and not outside
        finally:
            b.close()
    assert not log.exists(), log.read_text()
