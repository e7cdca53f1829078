"""Region features: shared-conv (Fast R-CNN) vs per-crop (R-CNN) extraction, and memory of the regions stage.

1. On the same images and weights (models/region_cnn.pt if present, else a randomly initialised shapes
   network): the 20 regions of each image are encoded (a) with the trunk run once per image + RoIAlign and
   (b) with the whole network run on each box warped to a fixed-size crop with context (R-CNN). Also the
   full detect + encode step, where per-crop also scores each RPN proposal on its own crop. Prints images/s
   each way, the ratio, and the largest feature difference on boxes where both forms must agree (aligned to
   the stride grid, roi_size * 8 pixels wide, context inside the image).
2. Peak RSS of the `regions` stage's work (load the model, stream all images into regions.h5) at two
   dataset sizes, each in a fresh child process: it must not grow with the number of images.

Usage: python benchmarks/regions.py [--images 64] [--sizes 200 1600] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from dvsa.data.dataset import load_dataset
from dvsa.data.images import load_rgb
from dvsa.regions.boxes import clip_boxes, decode_deltas
from dvsa.regions.checkpoint import load_region_cnn
from dvsa.regions.config import DetectParams, RegionsParams
from dvsa.regions.data import ImageRecord, image_records
from dvsa.regions.extract import write_regions
from dvsa.regions.model import Prepared
from dvsa.regions.percrop import context_margin, encode_per_crop
from dvsa.regions.select import pack_regions, select_detections
from dvsa.regions.shapes_net import STRIDE, ShapesRegionCNN
from dvsa.regions.store import N_REGIONS

DATASET = Path("data/dataset/dataset.json")
MODEL = Path("models/region_cnn.pt")


def load_model() -> ShapesRegionCNN:
    if MODEL.is_file():
        model = load_region_cnn(MODEL)
        if isinstance(model, ShapesRegionCNN):
            print(f"model: {MODEL}")
            return model
    print(f"model: randomly initialised shapes network ({MODEL} missing or not a shapes network)")
    torch.manual_seed(0)
    return ShapesRegionCNN(RegionsParams().net, [f"class {k}" for k in range(49)]).eval()


def pick_regions(
    model: ShapesRegionCNN, x: torch.Tensor, fmap: torch.Tensor, detect: DetectParams
) -> list[torch.Tensor]:
    """The region boxes (whole image + top 19 detections, network pixels) of each image of x (B, 3, S, S)."""
    s = x.shape[3]
    prepared = Prepared(list(x), [(s, s)] * len(x))
    rois = []
    for boxes, scores in model.detect(prepared, fmap, detect.n_proposals):
        keep = select_detections(boxes, scores, N_REGIONS - 1, detect.nms_iou, detect.min_score)
        rois.append(pack_regions(boxes[keep], scores[keep], s, s)[0][: len(keep) + 1])
    return rois


@torch.no_grad()
def shared_encode(model: ShapesRegionCNN, x: torch.Tensor, rois: list[torch.Tensor]) -> torch.Tensor:
    return model.encode(model.trunk_features(x), rois)


@torch.no_grad()
def percrop_encode(model: ShapesRegionCNN, x: torch.Tensor, rois: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([encode_per_crop(model, xi, r) for xi, r in zip(x, rois)])


@torch.no_grad()
def shared_detect_encode(model: ShapesRegionCNN, x: torch.Tensor, detect: DetectParams) -> torch.Tensor:
    fmap = model.trunk_features(x)
    return model.encode(fmap, pick_regions(model, x, fmap, detect))


@torch.no_grad()
def percrop_detect_encode(model: ShapesRegionCNN, x: torch.Tensor, detect: DetectParams) -> torch.Tensor:
    """R-CNN: each RPN proposal is scored on its own crop, then the 20 regions are encoded on their own
    crops (the RPN itself runs on the shared trunk in both forms)."""
    s = x.shape[3]
    props, _ = model.proposals(x, model.trunk_features(x))
    feats = []
    for xi, p in zip(x, props):
        p = p[: detect.n_proposals]
        fc7 = encode_per_crop(model, xi, p)  # (P, D)
        scores = model.head.cls_score(fc7).softmax(1)[:, 1:].max(1).values
        boxes = clip_boxes(decode_deltas(p, model.head.bbox_pred(fc7)), s, s)
        keep = select_detections(boxes, scores, N_REGIONS - 1, detect.nms_iou, detect.min_score)
        feats.append(encode_per_crop(model, xi, pack_regions(boxes[keep], scores[keep], s, s)[0][: len(keep) + 1]))
    return torch.cat(feats)


def images_per_s(fn, x: torch.Tensor, *args, repeats: int = 2) -> float:  # type: ignore[no-untyped-def]
    fn(x[:2], *[a[:2] if isinstance(a, list) else a for a in args])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x, *args)
        best = min(best, time.perf_counter() - start)
    return len(x) / best


def aligned_boxes(model: ShapesRegionCNN, size: int) -> torch.Tensor:
    side = model.head.roi_size * STRIDE
    m = context_margin(model)
    starts = range(m, size - m - side + 1, STRIDE)
    return torch.tensor([[float(a), float(b), a + side, b + side] for a in starts for b in starts])


def speed(model: ShapesRegionCNN, records: list[ImageRecord], n: int) -> None:
    s = model.net.input_size
    detect = DetectParams()
    x = torch.stack(model.prepare([load_rgb(r.path) for r in records[:n]]).images)  # (n, 3, S, S)
    with torch.no_grad():
        rois = pick_regions(model, x, model.trunk_features(x), detect)
    print(f"\n== shared conv vs per crop: {len(x)} images of {s}x{s}, {sum(map(len, rois)) / len(x):.1f} regions/image, "
          f"{torch.get_num_threads()} threads, crop {model.head.roi_size * STRIDE + 2 * context_margin(model)} px")
    for name, shared_fn, crop_fn, args in (
        ("encode the 20 regions", shared_encode, percrop_encode, (rois,)),
        (f"detect ({detect.n_proposals} proposals) + encode", shared_detect_encode, percrop_detect_encode, (detect,)),
    ):
        a = images_per_s(partial(shared_fn, model), x, *args)
        b = images_per_s(partial(crop_fn, model), x, *args)
        print(f"{name:36s} shared {a:8.1f} images/s | per-crop {b:7.1f} images/s | ratio {a / b:5.1f}x")
    boxes = aligned_boxes(model, s)
    shared = shared_encode(model, x, [boxes] * len(x))
    crop = percrop_encode(model, x, [boxes] * len(x))
    diff = (shared - crop).abs().max().item()
    print(f"max |shared - per-crop| on {len(boxes)} grid-aligned boxes x {len(x)} images: {diff:.2e} "
          f"(features up to {shared.abs().max().item():.2f})")
    real = torch.nn.functional.cosine_similarity(shared_encode(model, x, rois), percrop_encode(model, x, rois), dim=1)
    print(f"detected boxes (RoIAlign resamples, the crop warps): mean cosine similarity {real.mean().item():.3f}")


def subset(dataset: dict, n: int, out: Path) -> Path:
    """A dataset.json of n images (repeating the originals when n is larger), with absolute image paths."""
    root = Path(dataset["image_root"]).resolve()
    images = [dict(dataset["images"][k % len(dataset["images"])]) for k in range(n)]
    path = out / f"dataset_{n}.json"
    path.write_text(json.dumps({"dataset": "subset", "image_root": str(root), "images": images}))
    return path


def rss_child(dataset_json: str, out: str) -> None:
    """The regions stage's work on one dataset (run in a fresh process by `memory`)."""
    params = RegionsParams()
    model = load_region_cnn(MODEL) if MODEL.is_file() else load_model()
    records = image_records(load_dataset(dataset_json), dataset_json)
    write_regions(model, records, out, params.detect, params.batch_size, params.feats_dtype)


def peak_rss(command: list[str]) -> float:
    """Peak resident memory (MiB) of a child process running `command`."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed (status {status})")
    return usage.ru_maxrss / 1024  # KiB -> MiB


def memory(sizes: list[int]) -> None:
    dataset = load_dataset(DATASET)
    print(f"\n== peak RSS of the regions stage (fresh process each, batch {RegionsParams().batch_size})")
    base = peak_rss([sys.executable, "-c", "import dvsa.regions.extract, dvsa.regions.checkpoint"])
    print(f"imports only (torch, torchvision, h5py): {base:7.1f} MiB")
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = subset(dataset, n, Path(tmp))
            start = time.perf_counter()
            peaks.append(peak_rss([sys.executable, __file__, "--rss-child", str(path), str(Path(tmp) / f"r{n}.h5")]))
            size = (Path(tmp) / f"r{n}.h5").stat().st_size / 2**20
            print(f"{n:6d} images: peak RSS {peaks[-1]:7.1f} MiB, regions.h5 {size:7.1f} MiB, "
                  f"{time.perf_counter() - start:5.1f} s")
    print(f"peak RSS ratio {sizes[-1]}/{sizes[0]} images: {peaks[-1] / peaks[0]:.2f} "
          f"(above the imports: {peaks[0] - base:.0f} vs {peaks[-1] - base:.0f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64, help="images for the speed comparison")
    ap.add_argument("--sizes", type=int, nargs=2, default=[200, 1600], help="dataset sizes for peak RSS")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(*args.rss_child)
        return
    records = image_records(load_dataset(DATASET), DATASET)
    speed(load_model(), [r for r in records if r.split == "test"], args.images)
    memory(args.sizes)


if __name__ == "__main__":
    main()
