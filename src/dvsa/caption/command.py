"""`dvsa caption IMAGE...`: caption image files with the trained region CNN (whole-image feature, region 0)
and captioner. One line per image (``path<TAB>caption``) or, with ``--json``, one JSON list. A file that cannot
be read is one line on stderr; the others still get captions, and the exit code is then 1."""

from __future__ import annotations

import argparse
import json
import sys

import torch
from PIL import Image

from dvsa.caption.checkpoint import load_captioner
from dvsa.caption.decode import beam_search
from dvsa.data.images import load_rgb
from dvsa.data.vocab import decode
from dvsa.errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("caption", help="caption image files with the trained models", description=__doc__)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any size, mode or format PIL reads)")
    p.add_argument("--model", default="models/captioner.pt", help="captioner checkpoint (default: %(default)s)")
    p.add_argument("--region-cnn", default="models/region_cnn.pt", help="region CNN (default: %(default)s)")
    p.add_argument("--beam-size", type=int, default=3, help="beam width (default: %(default)s)")
    p.add_argument("--max-length", type=int, default=16, help="length cap in words (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {image, caption}")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dvsa.regions.checkpoint import load_region_cnn
    from dvsa.regions.extract import extract_regions

    for name in ("beam_size", "max_length", "batch_size"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    captioner, vocab, _ = load_captioner(args.model)
    region_cnn = load_region_cnn(args.region_cnn)
    if captioner.config["feat_dim"] != region_cnn.fc7_dim:
        raise InputError(
            f"{args.model}: expects {captioner.config['feat_dim']}-d features but {args.region_cnn} "
            f"gives {region_cnn.fc7_dim}-d (were they trained on the same data?)"
        )
    failed = 0
    results = []
    pending: list[tuple[str, Image.Image]] = []

    def flush() -> None:
        if not pending:
            return
        feats = extract_regions(region_cnn, [im for _, im in pending]).feats[:, 0]  # (B, D) whole image
        seqs, _ = beam_search(captioner, torch.from_numpy(feats), args.beam_size, args.max_length)
        for (path, _), seq in zip(pending, seqs):
            caption = decode(seq.tolist(), vocab)
            results.append({"image": path, "caption": caption})
            if not args.json:
                print(f"{path}\t{caption}", flush=True)
        pending.clear()

    for path in args.images:
        try:
            pending.append((path, load_rgb(path)))
        except InputError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        if len(pending) == args.batch_size:
            flush()
    flush()
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    return 1 if failed else 0

