"""Throughput and peak memory of the `regions` stage per backbone, and where its time goes.

Each configuration runs in a fresh child process on photo-sized JPEGs that this script writes (500x375,
640x480, 500x333, 375x500: the sizes of Flickr and COCO photos): first a timed pass through the stage's own
code (`write_regions`: DataLoader workers decoding, shards, regions.h5), which gives images/s, the CPU time per
image of the process (all its threads, spinning ones included: under load it moves too) and the peak RSS
(VmHWM) of the process; then a sequential pass that splits one image's time into decoding + resizing,
detecting and encoding (trunk + RoIAlign + fc6/fc7). The networks are randomly initialised (torchvision's
init): their speed does not depend on the weights (the detector's post-processing keeps a fixed number of
proposals whatever their scores).

The shapes network (128 x 128 input) goes through the photos SHAPES_REPEAT times for a stable rate.

`--baseline-src DIR` also times an older dvsa's `extract_regions` (one image per call) from DIR, e.g.
`git archive e671d12 src | tar -x -C /tmp/old` and `--baseline-src /tmp/old/src`, in the same run.

Usage: python benchmarks/regions.py [--images 16] [--device cpu|cuda] [--threads 0] [--workers 2]
                                    [--configs shapes alexnet vgg16 ...] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZES = [(500, 375), (640, 480), (500, 333), (375, 500)]
SHAPES_REPEAT = 20  # the shapes network goes through each photo this many times
# name -> (backbone, detector, detect overrides); detector None = the shapes network's own RPN
CONFIGS: dict[str, tuple[str, str | None, dict[str, int]]] = {
    "shapes": ("shapes", None, {}),
    "alexnet": ("alexnet", "fasterrcnn_resnet50_fpn", {"n_proposals": 300, "min_size": 600, "max_size": 1000}),
    "vgg16": ("vgg16", "fasterrcnn_resnet50_fpn", {"n_proposals": 300, "min_size": 600, "max_size": 1000}),
    "vgg16-detector800": ("vgg16", "fasterrcnn_resnet50_fpn", {"n_proposals": 1000}),
    "vgg16-mobilenet": (
        "vgg16",
        "fasterrcnn_mobilenet_v3_large_fpn",
        {"n_proposals": 300, "min_size": 600, "max_size": 1000},
    ),
    "alexnet-mobilenet": (
        "alexnet",
        "fasterrcnn_mobilenet_v3_large_fpn",
        {"n_proposals": 300, "min_size": 600, "max_size": 1000},
    ),
}


def write_photos(folder: Path, n: int) -> list[Path]:
    """n photo-like JPEGs: smooth colour fields, noise and a few discs."""
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n):
        w, h = SIZES[k % len(SIZES)]
        xx = np.mgrid[0:h, 0:w][1] / max(w, h)
        base = np.stack([np.sin(xx * rng.uniform(2, 9) + rng.uniform(0, 6)) * 80 + 128 for _ in range(3)], -1)
        image = Image.fromarray((base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0, s = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60)), int(rng.integers(30, 200))
            draw.ellipse([x0, y0, x0 + s, y0 + s], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        paths.append(folder / f"{k:05d}.jpg")
        image.filter(ImageFilter.GaussianBlur(1)).save(paths[-1], quality=90)
    return paths


def vm_hwm() -> float:
    """Peak resident memory of this process in MiB (counted from its exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status (Linux only)")


def build(name: str, device: str):  # type: ignore[no-untyped-def]
    """The region CNN of a configuration, randomly initialised, and the `detect` params."""
    import torch

    from dvsa.regions.config import DetectParams, PretrainedParams, RegionsParams
    from dvsa.regions.pretrained import DETECTORS, ENCODERS, PretrainedRegionCNN
    from dvsa.regions.shapes_net import ShapesRegionCNN

    backbone, detector, detect = CONFIGS[name]
    torch.manual_seed(0)
    if detector is None:
        model = ShapesRegionCNN(RegionsParams().net, [f"class {k}" for k in range(49)])
    else:
        model = PretrainedRegionCNN(
            backbone,
            PretrainedParams(detector=detector),  # type: ignore[arg-type]
            ENCODERS[backbone].build(),
            DETECTORS[detector].build(),
        )
    return model.to(device).eval(), replace(DetectParams(), **detect)


def child(name: str, folder: str, device_name: str, workers: int, batch_size: int) -> None:
    """In a fresh process: the timed pass, then the split of the time; prints one JSON line."""
    import torch

    from dvsa.data.images import load_rgb
    from dvsa.device import ComputeParams, autocast, autocast_dtype
    from dvsa.regions.data import ImageRecord
    from dvsa.regions.extract import extract_prepared, write_regions
    from dvsa.regions.model import Prepared, to_float, to_uint8

    device = torch.device(device_name)
    amp = autocast_dtype(ComputeParams(), device)
    model, detect = build(name, device_name)
    paths = sorted(Path(folder).glob("*.jpg"))
    repeat = SHAPES_REPEAT if CONFIGS[name][1] is None else 1  # the small network: more images for a stable rate
    records = [ImageRecord(p, "test", k, np.zeros((0, 4), np.float32), ()) for k, p in enumerate(paths * repeat)]
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: one image of each size
        write_regions(model, records[: len(SIZES)], Path(tmp) / "w.h5", detect, batch_size, "float16", amp=amp)
        sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        write_regions(model, records, Path(tmp) / "r.h5", detect, batch_size, "float16", workers=workers, amp=amp)
        sync(device)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = vm_hwm()
    split = {"decode": 0.0, "detect": 0.0, "encode": 0.0}
    for p in paths:
        t0 = time.perf_counter()
        image = load_rgb(p)
        pixels = to_uint8(image, *model.input_size(*image.size))
        t1 = time.perf_counter()
        prepared = Prepared([to_float(pixels.to(device))], [image.size])
        with torch.inference_mode(), autocast(device, amp):
            fmaps = model.features(prepared)
            sync(device)
            t2 = time.perf_counter()
            model.detect(prepared, fmaps, detect)
            sync(device)
            t3 = time.perf_counter()
        split["decode"] += t1 - t0
        split["detect"] += t3 - t2
        extract_prepared(
            model, prepared, replace(detect, proposals="oracle"), [np.array([[0, 0, 50, 50]] * 19, np.float32)], amp
        )  # trunk + 20 boxes encoded, no detector
        sync(device)
        split["encode"] += time.perf_counter() - t3
    print(
        json.dumps(
            {
                "images_per_s": len(records) / seconds,
                "cpu_s_per_image": cpu / len(records),
                "peak_rss_mib": peak,
                **split,
            }
        )
    )


def baseline_child(folder: str) -> None:
    """An older dvsa (on PYTHONPATH): vgg16 + fasterrcnn_resnet50_fpn through its extract_regions, one image
    per call, with its default settings; prints one JSON line."""
    import torch

    from dvsa.data.images import load_rgb
    from dvsa.regions.config import PretrainedParams
    from dvsa.regions.extract import extract_regions
    from dvsa.regions.pretrained import DETECTORS, ENCODERS, PretrainedRegionCNN

    torch.manual_seed(0)
    model = PretrainedRegionCNN(
        "vgg16",
        PretrainedParams(),
        ENCODERS["vgg16"].build().eval(),
        DETECTORS["fasterrcnn_resnet50_fpn"].build().eval(),
    ).eval()
    paths = sorted(Path(folder).glob("*.jpg"))
    for p in paths[: len(SIZES)]:
        extract_regions(model, [load_rgb(p)])
    start, cpu = time.perf_counter(), time.process_time()
    for p in paths:
        extract_regions(model, [load_rgb(p)])
    print(
        json.dumps(
            {
                "images_per_s": len(paths) / (time.perf_counter() - start),
                "cpu_s_per_image": (time.process_time() - cpu) / len(paths),
                "peak_rss_mib": vm_hwm(),
            }
        )
    )


def sync(device) -> None:  # type: ignore[no-untyped-def]
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def run_child(args: list[str], pythonpath: str | None = None) -> dict[str, float]:
    env = dict(os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader processes decoding images")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--baseline-src", help="src/ folder of an older dvsa to time the same way (vgg16 + resnet50)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--baseline-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child:
        name, folder, device, workers, batch = args.child
        child(name, folder, device, int(workers), int(batch))
        return
    if args.baseline_child:
        baseline_child(args.baseline_child)
        return
    threads = ["--threads", str(args.threads)] if args.threads else []
    print(
        f"{args.images} photos ({', '.join(f'{w}x{h}' for w, h in SIZES)}), device {args.device}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, workers {args.workers}, "
        f"batch {args.batch_size}; random-init weights"
    )
    print("| configuration | images/s | CPU s/image | peak RSS (MiB) | decode | detect | encode |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        write_photos(Path(folder), args.images)
        if args.baseline_src:
            r = run_child([*threads, "--baseline-child", folder], args.baseline_src)
            print(
                f"| before (vgg16, detector at 800 px, 1000 proposals) | {r['images_per_s']:.3f} | "
                f"{r['cpu_s_per_image']:.2f} | {r['peak_rss_mib']:.0f} | | | |",
                flush=True,
            )
        for name in args.configs:
            r = run_child([*threads, "--child", name, folder, args.device, str(args.workers), str(args.batch_size)])
            total = r["decode"] + r["detect"] + r["encode"]
            backbone, detector, detect = CONFIGS[name]
            label = name if detector is None else f"{name} ({detector}, {detect})"
            print(
                f"| {label} | {r['images_per_s']:.3f} | {r['cpu_s_per_image']:.2f} | {r['peak_rss_mib']:.0f} | "
                f"{r['decode'] / total:.0%} | "
                f"{r['detect'] / total:.0%} | {r['encode'] / total:.0%} |",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
