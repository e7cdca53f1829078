"""`dvsa caption IMAGE...`: caption image files with the trained region CNN (its 20 regions per image, as the
`regions` stage extracts them) and captioner (with its finetuned CNN encoder, if it finetuned one). One line
per image (``path<TAB>caption``) or, with ``--json``, one JSON list. A file that cannot be read is one line
on stderr; the others still get captions, and the exit code is then 1."""

from __future__ import annotations

import argparse
import json
import sys

import torch
from PIL import Image

from dvsa.caption.beam import beam_search
from dvsa.caption.checkpoint import load_captioner
from dvsa.caption.cnn import CaptionCNN
from dvsa.data.images import load_rgb
from dvsa.data.vocab import decode
from dvsa.device import ComputeParams, resolve_device
from dvsa.errors import InputError
from dvsa.features import check_feature_dim, feature_dim, region_mask, with_geometry


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("caption", help="caption image files with the trained models", description=__doc__)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any size, mode or format PIL reads)")
    p.add_argument("--model", default="models/captioner.pt", help="captioner checkpoint (default: %(default)s)")
    p.add_argument("--region-cnn", default="models/region_cnn.pt", help="region CNN (default: %(default)s)")
    p.add_argument("--beam-size", type=int, default=3, help="beam width (default: %(default)s)")
    p.add_argument("--max-length", type=int, default=16, help="length cap in words (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {image, caption}")
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="as compute.device (default: %(default)s)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dvsa.regions.checkpoint import load_region_cnn
    from dvsa.regions.extract import extract_regions

    for name in ("beam_size", "max_length", "batch_size"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    device = resolve_device(ComputeParams(device=args.device))
    captioner, vocab, ckpt = load_captioner(args.model)
    captioner.to(device)
    region_cnn = load_region_cnn(args.region_cnn, device)
    geometry = bool(ckpt["params"].get("region_geometry", False))
    check_feature_dim(
        captioner.config["feat_dim"], feature_dim(region_cnn.fc7_dim, geometry), args.model, args.region_cnn,
        " (were they trained on the same data?)",
    )
    tuned = None
    if "cnn" in ckpt:  # the captioner's finetuned encoder on the detector's boxes
        tuned = CaptionCNN(load_region_cnn(args.region_cnn, device))
        tuned.load_encoder_state_dict(ckpt["cnn"])
        tuned.eval()
    failed = 0
    results = []
    pending: list[tuple[str, Image.Image]] = []

    def flush() -> None:
        if not pending:
            return
        images = [im for _, im in pending]
        regions = extract_regions(region_cnn, images)
        mask = region_mask(regions.n_regions, regions.feats.shape[1]).to(device)  # (B, R)
        feats = torch.from_numpy(regions.feats).to(device)  # (B, R, D)
        boxes = torch.from_numpy(regions.boxes).to(device)  # (B, R, 4)
        if tuned is not None:
            with torch.no_grad():
                feats = feats.clone()
                feats[mask] = tuned(images, [b[:n] for b, n in zip(boxes, regions.n_regions)])
        if geometry:
            feats = with_geometry(feats, boxes, torch.from_numpy(regions.scores).to(device), mask)
        decoded, _ = beam_search(captioner, feats, mask, args.beam_size, args.max_length)
        for (path, _), seq in zip(pending, decoded.seqs.cpu()):
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
