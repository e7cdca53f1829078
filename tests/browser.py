"""Headless Chromium (Debian package ``chromium``) for checking and photographing the static report.

``python -m tests.browser reports/index.html docs/report.png`` saves a screenshot.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from dvsa.errors import DvsaError

NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000")


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, NAMES) if p), None)


def _run(args: list[str], timeout: float) -> str:
    exe = find_chromium()
    if exe is None:
        raise DvsaError("chromium not found (Debian: apt-get install -y chromium)")
    result = subprocess.run([exe, *FLAGS, *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise DvsaError(f"chromium failed ({result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout


def _url(page: str | Path, fragment: str) -> str:
    """The file:// URL of `page`, with ``#fragment`` when one is given."""
    return Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else "")


def dump_dom(page: str | Path, timeout: float = 60, fragment: str = "") -> str:
    """The page's DOM after load (scripts run), as Chromium serialises it; opened at ``#fragment`` if given."""
    return _run(["--dump-dom", _url(page, fragment)], timeout)


def screenshot(
    page: str | Path, png: str | Path, width: int = 1280, height: int = 1400, timeout: float = 60, fragment: str = ""
) -> None:
    """Save a PNG of the page as rendered in a width x height window (opened at ``#fragment`` if given)."""
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    _run([f"--window-size={width},{height}", f"--screenshot={Path(png).resolve()}", _url(page, fragment)], timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description="screenshot a static HTML page with headless Chromium")
    parser.add_argument("page")
    parser.add_argument("png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1400)
    parser.add_argument("--fragment", default="", help="open the page at #FRAGMENT (reports/index.html: worst-first)")
    a = parser.parse_args()
    screenshot(a.page, a.png, a.width, a.height, fragment=a.fragment)
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
