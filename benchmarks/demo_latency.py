"""Request latency of `dvsa demo` (docs/demo.md): p50 / p95 of a Caption request (one 128 px test image) and
a Search request (one test sentence against the test split), in-process (the handler alone) and over HTTP
(Gradio's server on loopback, called with gradio_client: upload, queue, result download included), at one torch
thread as the demo runs. Goal on 2 CPU cores: caption p50 <= 300 ms, search p50 <= 100 ms.

Usage: python benchmarks/demo_latency.py [--root .] [--n 40] (the checkout's trained models and data)
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

os.environ.update({"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"})

from dvsa.data.images import load_rgb  # noqa: E402
from dvsa.demo import handlers  # noqa: E402
from dvsa.demo.command import paths_under  # noqa: E402
from dvsa.demo.models import load_models  # noqa: E402


def timed(fn: Callable[[int], object], n: int, warmup: int = 3) -> np.ndarray:
    """Milliseconds of fn(0..n-1), after `warmup` untimed calls."""
    for k in range(warmup):
        fn(k)
    out = []
    for k in range(n):
        t = time.perf_counter()
        fn(k)
        out.append(1000 * (time.perf_counter() - t))
    return np.array(out)


def line(name: str, ms: np.ndarray) -> str:
    return f"{name:<28} p50 {np.percentile(ms, 50):7.1f} ms   p95 {np.percentile(ms, 95):7.1f} ms   (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--n", type=int, default=40)
    a = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        models, _ = load_models(paths_under(a.root, Path(cache)), "test")
        print(f"load models + build the test split's index: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        load_models(paths_under(a.root, Path(cache)), "test")
        print(f"load models + read the cached index:        {time.perf_counter() - t:.1f} s")
    files = models.examples()
    sizes = {load_rgb(f).size for f in files}
    print(f"{len(models.index.image_rows)} test images ({', '.join(f'{w}x{h}' for w, h in sorted(sizes))} px), "
          f"{len(models.index.words)} sentences, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs")
    ix = models.labels.ix_to_word
    sentences = [" ".join(ix[int(w)] for w in row if w > 0) for row in models.index.words[:: 5]]
    print(line("caption (handler)", timed(lambda k: handlers.caption(models, load_rgb(files[k % len(files)])), a.n)))
    print(line("search (handler)", timed(lambda k: handlers.search_images(models, sentences[k % len(sentences)]), a.n)))
    from gradio_client import Client, handle_file

    from dvsa.demo.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = build_app(models, 5_000_000)
    app.queue(default_concurrency_limit=2)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
               allowed_paths=[str(files[0].parent.resolve())])
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        print(line("caption (HTTP request)", timed(
            lambda k: client.predict(handle_file(str(files[k % len(files)])), api_name="/caption"), a.n)))
        print(line("search (HTTP request)", timed(
            lambda k: client.predict(sentences[k % len(sentences)], 6, api_name="/search"), a.n)))
    finally:
        app.close()


if __name__ == "__main__":
    main()
