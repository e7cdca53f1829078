"""`dvsa demo`: serve the demo page over the trained models of a checkout (default: the working directory),
on 127.0.0.1 unless ``--host`` says otherwise. Offline: no analytics, no share link, no font or script from
outside. The Search tab's embeddings are read from ``--cache-dir`` when the alignment model and data files
are those they were computed from, else computed once and written there."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields
from pathlib import Path

import torch

from dvsa.demo.models import DemoPaths, default_cache_dir, load_models
from dvsa.errors import DvsaError, InputError

OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",  # no usage reports, no version check
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("demo", help="a local web page over the trained models", description=__doc__)
    p.add_argument("--root", type=Path, default=Path("."), help="the checkout whose models/ and data/ are read")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    p.add_argument("--split", default="test", help="the split searched and offered as examples (default: %(default)s)")
    p.add_argument(
        "--cache-dir", type=Path, default=default_cache_dir(), help="search embeddings (default: %(default)s)"
    )
    p.add_argument("--max-upload-mb", type=float, default=5.0, help="upload size limit (default: %(default)s MB)")
    p.add_argument("--concurrency", type=int, default=2, help="requests served at once (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    p.set_defaults(run=run)


def paths_under(root: Path, cache_dir: Path) -> DemoPaths:
    """The default files of a checkout at `root`."""
    default = DemoPaths()
    return DemoPaths(**{f.name: root / getattr(default, f.name) for f in fields(DemoPaths) if f.name != "cache_dir"},
                     cache_dir=cache_dir)


def run(args: argparse.Namespace) -> int:
    for name in ("port", "concurrency", "threads"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name}: must be >= 1, got {getattr(args, name)}")
    if args.max_upload_mb <= 0:
        raise InputError(f"--max-upload-mb: must be > 0, got {args.max_upload_mb}")
    os.environ.update(OFFLINE_ENV)  # before Gradio is imported: it reads them at import
    try:
        from dvsa.demo.app import build_app, theme
    except ImportError as e:
        raise DvsaError(f"dvsa demo needs gradio ({e}; pip install -r requirements.txt)") from None
    torch.set_num_threads(args.threads)
    models, built = load_models(paths_under(args.root, args.cache_dir), args.split)
    print(f"search index of the {args.split} split {'computed and written to' if built else 'read from'} "
          f"{args.cache_dir}", flush=True)
    max_bytes = int(args.max_upload_mb * 1e6)
    app = build_app(models, max_bytes)
    app.queue(default_concurrency_limit=args.concurrency)
    from dvsa.demo.app import CSS

    app.launch(
        server_name=args.host, server_port=args.port, share=False, max_file_size=max_bytes, theme=theme(), css=CSS,
        footer_links=[], allowed_paths=[str(p.parent.resolve()) for p in models.examples()[:1]], ssr_mode=False,
    )
    return 0
