"""`dvsa caption IMAGE...`: caption image files with the trained region CNN (its 20 regions per image, as the
`regions` stage extracts them) and captioner (with its finetuned CNN encoder, if it finetuned one). One line
per image (``path<TAB>caption``) or, with ``--json``, one JSON list. A file that cannot be read is one line
on stderr; the others still get captions, and the exit code is then 1."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
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


@dataclass
class ImageCaption:
    """One image's beam-search caption and where its words looked."""

    caption: str
    attention: np.ndarray | None  # (T, R) of the T words; None for a captioner without attention
    boxes: np.ndarray  # (R, 4) xyxy in the image's pixels, the regions the captioner read
    n_regions: int  # the real regions among the R

    @property
    def tokens(self) -> list[str]:
        return self.caption.split()


class ImageCaptioner:
    """The region CNN and captioner of `dvsa caption`, loaded once: RGB images -> captions (§3.1.1 regions,
    then the captioner's beam search over them). Read-only after loading, so several threads may call it."""

    def __init__(self, model: str, region_cnn: str, device: str = "auto") -> None:
        from dvsa.regions.checkpoint import load_region_cnn

        self.device = resolve_device(ComputeParams(device=device))
        self.captioner, self.vocab, ckpt = load_captioner(model)
        self.captioner.to(self.device)
        self.region_cnn = load_region_cnn(region_cnn, self.device)
        self.geometry = bool(ckpt["params"].get("region_geometry", False))
        check_feature_dim(
            self.captioner.config["feat_dim"], feature_dim(self.region_cnn.fc7_dim, self.geometry), model, region_cnn,
            " (were they trained on the same data?)",
        )
        self.tuned = None
        if "cnn" in ckpt:  # the captioner's finetuned encoder on the detector's boxes
            self.tuned = CaptionCNN(load_region_cnn(region_cnn, self.device))
            self.tuned.load_encoder_state_dict(ckpt["cnn"])
            self.tuned.eval()

    @torch.no_grad()
    def __call__(self, images: Sequence[Image.Image], beam_size: int, max_length: int) -> list[ImageCaption]:
        """The caption of each image, decoded in one batch."""
        from dvsa.regions.extract import extract_regions

        regions = extract_regions(self.region_cnn, images)
        mask = region_mask(regions.n_regions, regions.feats.shape[1]).to(self.device)  # (B, R)
        feats = torch.from_numpy(regions.feats).to(self.device)  # (B, R, D)
        boxes = torch.from_numpy(regions.boxes).to(self.device)  # (B, R, 4)
        if self.tuned is not None:
            feats = feats.clone()
            feats[mask] = self.tuned(images, [b[:n] for b, n in zip(boxes, regions.n_regions)])
        if self.geometry:
            feats = with_geometry(feats, boxes, torch.from_numpy(regions.scores).to(self.device), mask)
        decoded, _ = beam_search(self.captioner, feats, mask, beam_size, max_length)
        out = []
        for k, seq in enumerate(decoded.seqs.cpu()):
            caption = decode(seq.tolist(), self.vocab)
            n_words = len(caption.split())
            attention = None if decoded.attention is None else decoded.attention[k, :n_words].cpu().numpy()
            out.append(ImageCaption(caption, attention, regions.boxes[k], int(regions.n_regions[k])))
        return out


def run(args: argparse.Namespace) -> int:
    for name in ("beam_size", "max_length", "batch_size"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    captioner = ImageCaptioner(args.model, args.region_cnn, args.device)
    failed = 0
    results = []
    pending: list[tuple[str, Image.Image]] = []

    def flush() -> None:
        if not pending:
            return
        for (path, _), item in zip(pending, captioner([im for _, im in pending], args.beam_size, args.max_length)):
            results.append({"image": path, "caption": item.caption})
            if not args.json:
                print(f"{path}\t{item.caption}", flush=True)
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
