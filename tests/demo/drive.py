"""`dvsa demo` served in a subprocess for a browser to drive, with every network connection the server
itself opens to anything but loopback written to a log (a Python audit hook), and the steps a person takes on
each tab. ``python -m tests.demo.drive --root . docs/`` photographs the three tabs over a checkout's models."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.demo.cdp import Browser

SERVER = """
import sys
LOG = sys.argv.pop(1)
def hook(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = str(args[1][0])
    elif event == "socket.getaddrinfo":
        host = str(args[0])
    else:
        return
    if not (host.startswith("127.") or host in ("::1", "localhost", "None", "0.0.0.0", "")):
        with open(LOG, "a") as f:
            f.write(event + " " + host + "\\n")
sys.addaudithook(hook)
from dvsa.cli import main
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(root: Path, cache_dir: Path, log: Path, timeout: float = 120.0) -> Iterator[str]:
    """`dvsa demo --root ROOT` on a free loopback port; yields its URL once it answers."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-c", SERVER, str(log), "demo", "--root", str(root), "--port", str(port),
           "--cache-dir", str(cache_dir)]
    out = log.with_suffix(".out")
    with open(out, "w") as stdout:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dvsa demo exited {proc.returncode}: {out.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"dvsa demo did not answer in {timeout:g} s") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def open_tab(b: Browser, name: str) -> None:
    b.js(f"[...document.querySelectorAll('button[role=tab]')].find(t => t.innerText.trim() === {json.dumps(name)})"
         ".click()")
    time.sleep(0.3)


def load(b: Browser, url: str) -> None:
    b.goto(url)
    b.wait("document.querySelector('#caption-upload input[type=file]') !== null", 60)


def body_text(b: Browser) -> str:
    return str(b.js("document.body.innerText"))


def caption(b: Browser, image: Path, timeout: float = 60) -> str:
    """Upload `image` on the Caption tab; the caption shown."""
    open_tab(b, "Caption")
    b.upload("#caption-upload input[type=file]", image)
    return str(b.wait("document.querySelector('#dvsa-caption')?.innerText", timeout))


def describe(b: Browser, image: Path, timeout: float = 60) -> str:
    open_tab(b, "Describe")
    b.upload("#describe-upload input[type=file]", image)
    return str(b.wait("document.querySelector('#dvsa-regions')?.innerText", timeout))


def search(b: Browser, sentence: str, timeout: float = 60) -> int:
    """Type `sentence` on the Search tab and press the button; the number of images shown."""
    open_tab(b, "Search")
    b.js("(() => { const t = document.querySelector('#search-query textarea'); "
         f"t.value = {json.dumps(sentence)}; t.dispatchEvent(new Event('input', {{bubbles: true}})); }})()")
    time.sleep(0.2)
    b.js("document.querySelector('#search-button').click()")
    return int(b.wait("document.querySelectorAll('#search-results img').length", timeout))


def main() -> None:
    parser = argparse.ArgumentParser(description="screenshots of the demo's three tabs")
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/dvsa-demo-cache"))
    parser.add_argument("--image", type=Path, help="the image to caption and describe (default: the first example)")
    parser.add_argument("--query", default="a red circle to the left of a blue square")
    parser.add_argument("out", type=Path)
    a = parser.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    log = Path("/tmp/dvsa-demo-net.log")
    log.unlink(missing_ok=True)
    with serve(a.root.resolve(), a.cache_dir, log) as url:
        b = Browser(height=1100)
        try:
            load(b, url)
            image = a.image
            if image is None:
                from dvsa.data.dataset import image_path, load_dataset

                dataset = load_dataset(a.root / "data/dataset/dataset.json")
                image = image_path(dataset["image_root"], next(i for i in dataset["images"] if i["split"] == "test"))
            print("caption:", caption(b, a.root / image if not Path(image).is_absolute() else image))
            time.sleep(1)
            b.screenshot(a.out / "demo_caption.png")
            print("describe:", describe(b, image).replace("\n", " | ")[:200])
            time.sleep(1)
            b.screenshot(a.out / "demo_describe.png")
            print("search:", search(b, a.query), "images")
            time.sleep(2)
            b.screenshot(a.out / "demo_search.png")
            outside = [u for u in b.requests if not u.startswith((url, "data:", "blob:"))]
            print("requests outside the server:", outside)
        finally:
            b.close()
    print("server connections outside loopback:", log.read_text() if log.exists() else "none")


if __name__ == "__main__":
    main()
