"""Region features: shared-conv (Fast R-CNN) vs per-crop (R-CNN) extraction, and memory of the regions stage.

1. On the same images and weights (models/region_cnn.pt if present, else a randomly initialised shapes
   network): the regions of each image (the detected ones, then exactly 20 boxes) are encoded (a) with the
   trunk run once per image + RoIAlign and (b) with the whole network run on each box warped to a
   fixed-size crop with context (R-CNN). Also the
   full detect + encode step, where per-crop also scores each RPN proposal on its own crop. Prints images/s
   each way, the ratio, and the largest feature difference on boxes where both forms must agree (aligned to
   the stride grid, roi_size * 8 pixels wide, context inside the image).
2. Peak RSS of the `regions` stage's work (load the model, stream all images into regions.h5) at two
   dataset sizes, each in a fresh child process: it must not grow with the number of images.
3. Optionally (--pretrained alexnet vgg16) the same shared vs per-crop timing for torchvision's architectures.

(Throughput and memory of the `regions` stage itself, per backbone: benchmarks/regions.py.)

Usage: python benchmarks/regions_percrop.py [--images 64] [--sizes 200 1600] [--threads 2] [--pretrained alexnet vgg16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from percrop import context_margin, encode_per_crop, warp_crops  # benchmarks/percrop.py, beside this script
from torch import nn

from dvsa.data.dataset import load_dataset
from dvsa.data.images import load_rgb
from dvsa.regions.boxes import clip_boxes, decode_deltas
from dvsa.regions.checkpoint import load_region_cnn
from dvsa.regions.config import DetectParams, PretrainedParams, RegionsParams
from dvsa.regions.data import ImageRecord, image_records
from dvsa.regions.extract import write_regions
from dvsa.regions.model import Prepared
from dvsa.regions.pretrained import ENCODERS, PretrainedRegionCNN
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
    for boxes, scores in model.detect(prepared, fmap, detect):
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


def images_per_s(fn, x: torch.Tensor, *args, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
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
        fmap = model.trunk_features(x)
        rois = pick_regions(model, x, fmap, detect)
        props, _ = model.proposals(x, fmap)
    whole = torch.tensor([[0.0, 0.0, s, s]])
    rois20 = [torch.cat([whole, p[: N_REGIONS - 1]]) for p in props]  # the whole image + 19 RPN proposals
    print(f"\n== shared conv vs per crop: {len(x)} images of {s}x{s}, {sum(map(len, rois)) / len(x):.1f} regions/image, "
          f"{torch.get_num_threads()} threads, crop {model.head.roi_size * STRIDE + 2 * context_margin(model)} px")
    for name, shared_fn, crop_fn, args in (
        ("encode the detected regions", shared_encode, percrop_encode, (rois,)),
        ("encode 20 boxes per image", shared_encode, percrop_encode, (rois20,)),
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


@torch.no_grad()
def pretrained_speed(backbone: str, images: list, n_boxes: int) -> None:
    """The same comparison for torchvision's VGG16/AlexNet (random weights: speed does not depend on them):
    shared conv5 + RoIAlign at 600 px vs R-CNN's warp of each box + 16 px context to 224 x 224."""
    torch.manual_seed(0)
    encoder = ENCODERS[backbone].build().eval()
    model = PretrainedRegionCNN(backbone, PretrainedParams(), encoder, nn.Identity()).eval()
    prepared = model.prepare(images)
    rois = []
    g = torch.Generator().manual_seed(0)
    for x in prepared.images:
        h, w = x.shape[1:]
        xy = torch.rand(n_boxes, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = (torch.rand(n_boxes, 2, generator=g) * 0.35 + 0.05) * torch.tensor([w, h])
        rois.append(torch.cat([xy, xy + wh], 1))

    def shared() -> None:
        model.encode(model.features(prepared), rois)

    def per_crop() -> None:
        for x, r in zip(prepared.images, rois):
            crops = warp_crops((x - model.mean) / model.std, r, 224 - 32, 16)  # (n, 3, 224, 224)
            encoder.classifier[:-1](torch.flatten(encoder.avgpool(encoder.features(crops)), 1))

    times = {}
    for name, fn in (("shared", shared), ("per-crop", per_crop)):
        fn()  # warm-up: oneDNN prepares its kernels for each new shape
        start = time.perf_counter()
        fn()
        times[name] = (time.perf_counter() - start) / len(images)
    print(f"{backbone:8s} {n_boxes} boxes/image: shared {1000 * times['shared']:7.0f} ms/image | per-crop "
          f"{1000 * times['per-crop']:7.0f} ms/image | ratio {times['per-crop'] / times['shared']:5.1f}x")


def subset(dataset: dict, n: int, out: Path) -> Path:
    """A dataset.json of n images (repeating the originals when n is larger), with absolute image paths."""
    root = Path(dataset["image_root"]).resolve()
    images = [dict(dataset["images"][k % len(dataset["images"])]) for k in range(n)]
    path = out / f"dataset_{n}.json"
    path.write_text(json.dumps({"dataset": "subset", "image_root": str(root), "images": images}))
    return path


def rss_child(args: list[str]) -> None:
    """In a fresh process (run by `memory`): the regions stage's work on dataset args[0] into args[1], or
    nothing but the imports when args is empty; then print the peak RSS."""
    if args:
        params = RegionsParams()
        model = load_region_cnn(MODEL) if MODEL.is_file() else load_model()
        records = image_records(load_dataset(args[0]), args[0])
        write_regions(model, records, args[1], params.detect, params.batch_size, params.feats_dtype)
    print(vm_hwm())


def vm_hwm() -> float:
    """This process's peak resident memory in MiB (VmHWM: counted from its exec, unlike ru_maxrss, which
    also holds the parent's memory that a forked child started with)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status (Linux only)")


def peak_rss(command: list[str]) -> float:
    """Peak resident memory (MiB) of a child process running `command`, which prints its VmHWM last."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.split()[-1])


def memory(sizes: list[int]) -> None:
    dataset = load_dataset(DATASET)
    print(f"\n== peak RSS of the regions stage (fresh process each, batch {RegionsParams().batch_size})")
    base = peak_rss([sys.executable, __file__, "--rss-child"])
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
    ap.add_argument("--pretrained", nargs="*", default=[], choices=["alexnet", "vgg16"],
                    help="also compare the forms for these torchvision architectures (random weights)")
    ap.add_argument("--rss-child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return
    records = image_records(load_dataset(DATASET), DATASET)
    test = [r for r in records if r.split == "test"]
    speed(load_model(), test, args.images)
    if args.pretrained:
        print(f"\n== torchvision architectures, {torch.get_num_threads()} threads, 4 images")
        for backbone in args.pretrained:
            pretrained_speed(backbone, [load_rgb(r.path) for r in test[:4]], N_REGIONS)
    memory(args.sizes)


if __name__ == "__main__":
    main()
