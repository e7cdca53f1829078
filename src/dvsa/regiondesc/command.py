"""`dvsa describe IMAGE...`: the detected regions of image files, each with a description by the region
captioner (§4.3), the region counterpart of `dvsa caption`. Per region one line
``path<TAB>x0,y0,x1,y1<TAB>score<TAB>description`` or, with ``--json``, one JSON list of
``{image, regions: [{box, score, description}]}``; ``--figure out.png`` draws them (Figure 6 style; with
several images, out_<image name>.png each). A file that cannot be read is one line on stderr; the others are
still described, and the exit code is then 1."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from dvsa.caption.beam import beam_search
from dvsa.caption.checkpoint import load_captioner
from dvsa.data.images import load_rgb
from dvsa.data.vocab import decode
from dvsa.errors import InputError
from dvsa.features import check_feature_dim, feature_dim, region_mask, with_geometry
from dvsa.regiondesc.figure import region_figure


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("describe", help="describe the detected regions of image files", description=__doc__)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any size, mode or format PIL reads)")
    p.add_argument("--model", default="models/region_captioner.pt", help="region captioner (default: %(default)s)")
    p.add_argument("--region-cnn", default="models/region_cnn.pt", help="region CNN (default: %(default)s)")
    p.add_argument(
        "--min-score", type=float, default=0.5, help="detections scored lower are left out (default: %(default)s)"
    )
    p.add_argument("--beam-size", type=int, default=3, help="beam width (default: %(default)s)")
    p.add_argument("--max-length", type=int, default=8, help="length cap in words (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {image, regions}")
    p.add_argument("--figure", type=Path, help="write the image(s) with the described boxes to this PNG")
    p.set_defaults(run=run)


def figure_path(figure: Path, image: str, several: bool) -> Path:
    """`figure` itself for one image; out_<image stem>.png beside it for several."""
    return figure.with_name(f"{figure.stem}_{Path(image).stem}{figure.suffix or '.png'}") if several else figure


class RegionDescriber:
    """The region CNN and region captioner of `dvsa describe`, loaded once: an RGB image -> its detections,
    each with a description (§4.3). Read-only after loading, so several threads may call it."""

    def __init__(self, model: str, region_cnn: str) -> None:
        from dvsa.regions.checkpoint import load_region_cnn

        self.model, self.vocab, ckpt = load_captioner(model)
        self.region_cnn = load_region_cnn(region_cnn)
        self.geometry = bool(ckpt["params"].get("region_geometry", False))
        check_feature_dim(
            self.model.config["feat_dim"], feature_dim(self.region_cnn.fc7_dim, self.geometry), model, region_cnn
        )

    @torch.no_grad()
    def __call__(self, image: Image.Image, min_score: float, beam_size: int, max_length: int) -> list[dict[str, Any]]:
        """``{box, score, description}`` of each detection (not region 0) scored at least `min_score`."""
        from dvsa.regions.extract import extract_regions

        r = extract_regions(self.region_cnn, [image])
        n = int(r.n_regions[0])
        mask = region_mask(r.n_regions, r.feats.shape[1])  # (1, R)
        feats = torch.from_numpy(r.feats)  # (1, R, D)
        if self.geometry:
            feats = with_geometry(feats, torch.from_numpy(r.boxes), torch.from_numpy(r.scores), mask)
        keep = [k for k in range(1, n) if r.scores[0, k] >= min_score]  # detections, not region 0
        if not keep:
            return []
        one = feats[0, keep][:, None]  # (K, 1, D): each region as a 1-region image
        decoded, _ = beam_search(self.model, one, torch.ones(len(keep), 1, dtype=torch.bool), beam_size, max_length)
        return [
            {
                "box": [round(float(c), 1) for c in r.boxes[0, k]],
                "score": round(float(r.scores[0, k]), 3),
                "description": decode(seq.tolist(), self.vocab),
            }
            for k, seq in zip(keep, decoded.seqs)
        ]


def run(args: argparse.Namespace) -> int:
    for name in ("beam_size", "max_length"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    describer = RegionDescriber(args.model, args.region_cnn)
    failed = 0
    results: list[dict[str, Any]] = []
    for path in args.images:
        try:
            image = load_rgb(path)
        except InputError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        regions = describer(image, args.min_score, args.beam_size, args.max_length)
        results.append({"image": path, "regions": regions})
        if not args.json:
            for reg in regions:
                print(
                    f"{path}\t{','.join(f'{c:g}' for c in reg['box'])}\t{reg['score']:.3f}\t{reg['description']}",
                    flush=True,
                )
        if args.figure is not None:
            out = figure_path(args.figure, path, len(args.images) > 1)
            region_figure(image, [g["box"] for g in regions], [g["description"] for g in regions]).save(out)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    return 1 if failed else 0
