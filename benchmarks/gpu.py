"""Every GPU measurement of issue 22 in one run, printed as one table (docs/gpu.md).

- Extraction (the `regions` stage's own `write_regions`: DataLoader workers decoding JPEGs, shards,
  regions.h5), images/s end to end and peak GPU memory, vgg16 + fasterrcnn_resnet50_fpn at 600 px (longest
  side 1000), 300 proposals: one image at a time (batch 1) and batched (dvsa.regions.padded), under fp16 and
  bf16 autocast. The weight files are written here (random values, He-scaled, of the real architectures and
  sizes: 528 + 160 MB) and assembled as the `region_cnn` stage does; so are the photos (500x375, 640x480,
  500x333, 375x500 JPEGs, benchmarks/regions.py's).
- Training tokens/s of the alignment model and of the captioner: the trainers' own setup and step(i) plus
  the loop's update (dvsa.train.loop.update), as benchmarks/scaling.py times them, on labels.h5 + regions.h5
  written here (random captions of 6-16 words, 5 per image; random 4096-d features, 12-20 regions), with
  the shapes world's vocabulary (90 words) and a COCO-sized one (9,500), at the default batches and at a
  GPU-sized captioner batch. Tokens: the batch's words (alignment), words + END (captioner).
- The self-critical iteration's cost against a cross-entropy iteration (dvsa.caption.self_critical), when
  the installed dvsa has it.

It needs torch, torchvision, numpy, Pillow, h5py, PyYAML and tqdm, and no DVC or pycocotools (what it imports
of src/ needs neither); a missing package is one line. Without CUDA it stops with one line; --cpu runs every
measurement on the CPU at tiny sizes (alexnet + the smallest detector at 96 px, a few steps): a smoke test of
this script, not a figure of the GPU.

    bash benchmarks/gpu.sh [--cpu] [--workers 8]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars of the stages' code: one table instead

PIP_NAMES = {"PIL": "pillow", "yaml": "pyyaml"}


def require() -> None:
    """Import what the measurements need; a missing package is one line (and exit 1)."""
    try:
        import h5py  # noqa: F401
        import numpy  # noqa: F401
        import torch  # noqa: F401
        import torchvision  # noqa: F401

        import dvsa.align.train  # noqa: F401
        import dvsa.caption.train  # noqa: F401
        import dvsa.regions.extract  # noqa: F401
        import dvsa.regions.pretrained  # noqa: F401
    except ModuleNotFoundError as e:
        name = (e.name or str(e)).split(".")[0]
        if name == "dvsa":
            sys.exit("benchmarks/gpu.py: dvsa not importable: run it as `bash benchmarks/gpu.sh` (src/ on PYTHONPATH)")
        sys.exit(f"benchmarks/gpu.py: missing Python package {name!r} (pip install {PIP_NAMES.get(name, name)})")


require()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dvsa.align.config import AlignmentParams  # noqa: E402
from dvsa.align.train import AlignmentTrainer  # noqa: E402
from dvsa.caption.config import CaptionerParams  # noqa: E402
from dvsa.caption.model import predicted_tokens  # noqa: E402
from dvsa.caption.train import build_trainer  # noqa: E402
from dvsa.data.labels import Labels, read_labels, write_labels  # noqa: E402
from dvsa.distributed import ONE_PROCESS  # noqa: E402
from dvsa.regions.config import DetectParams, PretrainedParams  # noqa: E402
from dvsa.regions.data import ImageRecord  # noqa: E402
from dvsa.regions.extract import write_regions  # noqa: E402
from dvsa.regions.pretrained import DETECTORS, ENCODERS, PretrainedRegionCNN  # noqa: E402
from dvsa.regions.store import N_REGIONS, RegionStore, RegionWriter  # noqa: E402
from dvsa.train.loop import Trainer, step_seed, update  # noqa: E402
from regions import write_photos  # noqa: E402  (benchmarks/regions.py)

SHAPES_VOCAB, COCO_VOCAB = 90, 9500  # the shapes world's words; COCO's at word_count_threshold 5
MAX_LENGTH, CAPTIONS = 16, 5


@dataclass(frozen=True)
class Sizes:
    backbone: str
    detector: str
    min_size: int  # the encoder's and the detector's shorter side
    max_size: int
    n_proposals: int
    one_images: int  # images extracted one at a time
    batched_images: int
    batch_size: int
    train_images: int
    big_batch: int  # the GPU-sized captioner batch (images)
    steps: int
    warmup: int


GPU = Sizes("vgg16", "fasterrcnn_resnet50_fpn", 600, 1000, 300, 64, 512, 32, 2000, 256, 30, 5)
SMOKE = Sizes("alexnet", "fasterrcnn_mobilenet_v3_large_320_fpn", 96, 160, 50, 3, 6, 3, 40, 8, 2, 1)


@dataclass
class Row:
    what: str
    config: str
    figure: float | None  # None: skipped
    unit: str
    peak_mib: float | None = None
    note: str = ""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict[str, float]) -> Iterator[None]:
    """out["mib"]: the peak GPU memory allocated by torch in the body (none on the CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    yield
    if device.type == "cuda":
        out["mib"] = torch.cuda.max_memory_allocated(device) / 2**20


def random_weights(build: Callable[[], nn.Module], seed: int) -> dict[str, torch.Tensor]:
    """A state dict of the architecture with random values: N(0, 2 / fan_in) weights, small biases,
    identity batch norms (a residual branch's last one at 0.2), so activations stay of order one under fp16."""
    with torch.device("meta"):
        model = build()
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.endswith("running_var"):
            state[name] = torch.ones(t.shape)
        elif name.endswith("running_mean"):
            state[name] = torch.zeros(t.shape)
        elif t.dim() > 1:
            state[name] = torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5
        elif name.endswith("weight"):
            state[name] = torch.full(t.shape, 0.2 if ".bn3." in name else 1.0)
        else:
            state[name] = torch.randn(t.shape, generator=g) * 0.1
    return state


def region_cnn(folder: Path, s: Sizes, device: torch.device) -> PretrainedRegionCNN:
    """The region CNN assembled from weight files written into `folder`, as the `region_cnn` stage does."""
    enc, det = ENCODERS[s.backbone], DETECTORS[s.detector]
    torch.save(random_weights(enc.build, 0), folder / enc.filename)
    torch.save(random_weights(det.build, 1), folder / det.filename)
    params = PretrainedParams(
        encoder_weights=str(folder / enc.filename),
        detector=s.detector,  # type: ignore[arg-type]
        detector_weights=str(folder / det.filename),
        min_size=s.min_size,
        max_size=s.max_size,
    )
    return PretrainedRegionCNN.assemble(s.backbone, params).to(device).eval()


def extraction_rows(folder: Path, s: Sizes, device: torch.device, workers: int) -> list[Row]:
    model = region_cnn(folder, s, device)
    detect = DetectParams(n_proposals=s.n_proposals, min_size=s.min_size, max_size=s.max_size)
    photos = write_photos(folder, max(s.one_images, s.batched_images))
    records = [ImageRecord(p, "test", k, np.zeros((0, 4), np.float32), ()) for k, p in enumerate(photos)]
    name = f"{s.backbone} + {s.detector}, {s.min_size} px, {s.n_proposals} proposals"
    rows = []
    for amp_name, amp in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        for batch_size, n in ((1, s.one_images), (s.batch_size, s.batched_images)):
            model.batch_images = batch_size > 1  # as on CUDA by default; forced for the CPU smoke run
            run = extraction_run(model, records[:n], detect, batch_size, amp, device, workers, folder)
            label = "one image at a time" if batch_size == 1 else f"batched, {batch_size} images"
            rows.append(Row("extraction", f"{name}, {amp_name}, {label}", run[0], "images/s", run[1], f"{n} images"))
    one, batched = rows[0].figure, rows[1].figure
    if one and batched:
        rows.append(Row("extraction", "batched / one image at a time (fp16)", batched / one, "x"))
    return rows


def extraction_run(
    model: PretrainedRegionCNN,
    records: list[ImageRecord],
    detect: DetectParams,
    batch_size: int,
    amp: torch.dtype,
    device: torch.device,
    workers: int,
    folder: Path,
) -> tuple[float, float | None]:
    """images/s of write_regions over `records` after a warm-up batch, and the peak GPU memory (MiB)."""

    def extract(part: list[ImageRecord], name: str) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # its summary line
            write_regions(model, part, folder / name, detect, batch_size, "float16", workers=workers, amp=amp)

    extract(records[: max(batch_size, 4)], "warmup.h5")  # every photo size once
    peak: dict[str, float] = {}
    with peak_memory(device, peak):
        sync(device)
        start = time.perf_counter()
        extract(records, "regions.h5")
        sync(device)
        seconds = time.perf_counter() - start
    return len(records) / seconds, peak.get("mib")


def write_training_data(folder: Path, n: int, vocab: int, seed: int) -> tuple[Path, Path]:
    """labels.h5 + vocab.json of n images (5 random captions each; 10% of the images in val)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, MAX_LENGTH + 1, n * CAPTIONS)  # (M,)
    labels = rng.integers(1, vocab + 1, (n * CAPTIONS, MAX_LENGTH))
    labels[np.arange(MAX_LENGTH)[None, :] >= lengths[:, None]] = 0
    starts = np.arange(n) * CAPTIONS + 1
    images = [{"split": "val" if k % 10 == 0 else "train", "id": k, "file_path": f"{k}.jpg"} for k in range(n)]
    words = {i: f"w{i}" for i in range(1, vocab + 1)}
    h5, js = folder / f"labels-{vocab}.h5", folder / f"vocab-{vocab}.json"
    write_labels(h5, js, Labels(labels, starts, starts + CAPTIONS - 1, lengths, words, images))
    return h5, js


def write_region_file(path: Path, n: int, dim: int, seed: int) -> None:
    """regions.h5 of n images: 12-20 regions each, random non-negative features, boxes in a 640x480 image."""
    rng = np.random.default_rng(seed)
    with RegionWriter(path, n, dim, "float16") as w:
        for start in range(0, n, 256):
            b = min(256, n - start)
            counts = rng.integers(12, N_REGIONS + 1, b)  # (b,)
            real = np.arange(N_REGIONS)[None, :] < counts[:, None]  # (b, R)
            feats = np.maximum(rng.normal(size=(b, N_REGIONS, dim)), 0) * real[:, :, None]
            xy = rng.uniform(0, 300, (b, N_REGIONS, 2))
            boxes = np.concatenate([xy, xy + rng.uniform(20, 180, (b, N_REGIONS, 2))], 2) * real[:, :, None]
            boxes[:, 0] = [0, 0, 640, 480]
            w.append(feats.astype(np.float16), boxes.astype(np.float32), real.astype(np.float32), counts,
                     np.arange(start, start + b))


def tokens_per_second(trainer: Trainer, tokens: Callable[[int], int], s: Sizes, device: torch.device
                      ) -> tuple[float, float | None, float]:
    """The trainer's iteration (step, then the loop's update) s.warmup times, then s.steps timed: tokens/s,
    the peak GPU memory (MiB) and seconds per iteration."""
    for i in range(s.warmup):
        update(trainer.groups, trainer.step(i).loss, i)
    peak: dict[str, float] = {}
    with peak_memory(device, peak):
        sync(device)
        start, total = time.perf_counter(), 0
        for i in range(s.warmup, s.warmup + s.steps):
            update(trainer.groups, trainer.step(i).loss, i)
            total += tokens(i)
        sync(device)
        seconds = time.perf_counter() - start
    return total / seconds, peak.get("mib"), seconds / s.steps


def training_rows(folder: Path, s: Sizes, device: torch.device) -> list[Row]:
    regions = folder / "train-regions.h5"
    write_region_file(regions, s.train_images, 4096, 0)
    rows = []
    with RegionStore(regions) as store:
        for vocab in (SHAPES_VOCAB, COCO_VOCAB):
            labels = read_labels(*write_training_data(folder, s.train_images, vocab, vocab))
            a = AlignmentParams(threads=0)
            aligner = AlignmentTrainer(labels, store, a, device, ONE_PROCESS)
            rate, peak, _ = tokens_per_second(
                aligner, lambda i: int((aligner.batches.at(i).labels > 0).sum()), s, device
            )
            rows.append(Row("alignment training", f"vocab {vocab:,}, batch {a.batch_size} x {a.seq_per_img}",
                            rate, "tokens/s", peak))
            for batch in (CaptionerParams().batch_size, s.big_batch):
                p = CaptionerParams(threads=0, batch_size=batch, val_images=10)
                captioner = build_trainer(p, labels, store, device=device)
                rate, peak, _ = tokens_per_second(
                    captioner, lambda i: predicted_tokens(captioner.batches.at(i).labels), s, device
                )
                rows.append(Row("captioner training", f"vocab {vocab:,}, batch {batch} x {p.seq_per_img}, "
                                f"{p.image}", rate, "tokens/s", peak))
        rows += self_critical_rows(folder, s, store, device)
        rows += agreement_rows(folder, s, store, device)
    return rows


def agreement_rows(folder: Path, s: Sizes, store: RegionStore, device: torch.device) -> list[Row]:
    """Each trainer on `device` against the same trainer on the CPU, on the same batches and seeds: the largest
    relative weight difference max |w_dev - w_cpu| / max |w_cpu| over the weight tensors after a short run (the
    captioner's second half self-critical). Float tolerance is expected (other kernels, other sums); a
    difference of order 1 would be a device bug."""
    labels = read_labels(folder / f"labels-{SHAPES_VOCAB}.h5", folder / f"vocab-{SHAPES_VOCAB}.json")
    n = 2 * max(s.steps // 2, 1)
    a = AlignmentParams(threads=0, batch_size=32)
    p = CaptionerParams(threads=0, val_images=10, self_critical_after=n // 2)

    def aligner(dev: torch.device) -> tuple[Trainer, Callable[[], dict[str, torch.Tensor]]]:
        t = AlignmentTrainer(labels, store, a, dev, ONE_PROCESS)
        return t, t.model.state_dict

    def captioner(dev: torch.device) -> tuple[Trainer, Callable[[], dict[str, torch.Tensor]]]:
        t = build_trainer(p, labels, store, device=dev)
        return t, t.protos.lm.state_dict

    rows = []
    for name, make, seed in (("alignment", aligner, a.seed), ("captioner (XE then SC)", captioner, p.seed)):
        weights = {}
        for dev in (torch.device("cpu"), device):
            torch.manual_seed(seed)
            trainer, state = make(dev)
            for i in range(n):
                torch.manual_seed(step_seed(seed, i))  # as the loop seeds iteration i
                update(trainer.groups, trainer.step(i).loss, i)
            weights[dev.type] = {k: v.detach().cpu().double() for k, v in state().items()}
        cpu, other = weights["cpu"], weights[device.type]
        worst = max(float((other[k] - w).abs().max()) / (float(w.abs().max()) or 1.0) for k, w in cpu.items())
        rows.append(Row(f"{device.type} vs CPU weights", f"{name}, {n} iterations", worst, "max rel. diff"))
    return rows


def self_critical_rows(folder: Path, s: Sizes, store: RegionStore, device: torch.device) -> list[Row]:
    """Seconds per self-critical iteration and its ratio to a cross-entropy one (shapes vocabulary, the
    default batch; the LM untrained, so its samples run to the longest caption: the dearest case)."""
    if not hasattr(CaptionerParams(), "self_critical_after"):
        print("self-critical iteration: skipped (this dvsa.caption.train has no self-critical phase)")
        return []
    labels = read_labels(folder / f"labels-{SHAPES_VOCAB}.h5", folder / f"vocab-{SHAPES_VOCAB}.json")
    p = CaptionerParams(threads=0, val_images=10)
    seconds: dict[str, float] = {}
    rows = []
    for name, after in (("cross-entropy", -1), ("self-critical", 0)):
        trainer = build_trainer(replace(p, self_critical_after=after), labels, store, device=device)
        _, peak, seconds[name] = tokens_per_second(trainer, lambda i: 0, s, device)
        config = f"vocab {SHAPES_VOCAB}, batch {p.batch_size}" + (
            f" x {p.train_sample_n} samples, {p.sc_baseline} baseline" if after == 0 else f" x {p.seq_per_img}")
        rows.append(Row(f"{name} iteration", config, 1000 * seconds[name], "ms", peak))
    rows.append(Row("self-critical / cross-entropy", "", seconds["self-critical"] / seconds["cross-entropy"], "x"))
    return rows


def print_table(rows: list[Row], head: str) -> None:
    print(head)
    print("| measurement | configuration | figure | unit | peak GPU memory |")
    print("|---|---|---|---|---|")
    for r in rows:
        figure = ("skipped" if r.figure is None else f"{r.figure:.1e}" if r.unit == "max rel. diff"
                  else f"{r.figure:,.2f}" if r.figure < 100 else f"{r.figure:,.0f}")
        peak = "" if r.peak_mib is None else f"{r.peak_mib:,.0f} MiB"
        config = r.config + (f" ({r.note})" if r.note else "")
        print(f"| {r.what} | {config} | {figure} | {r.unit} | {peak} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="smoke run on the CPU at tiny sizes")
    parser.add_argument("--workers", type=int, default=8, help="decoding processes (compute.workers)")
    a = parser.parse_args()
    if a.cpu:
        device, s, workers = torch.device("cpu"), SMOKE, 0
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        sys.exit(f"benchmarks/gpu.py: torch {torch.__version__} sees no CUDA GPU here (--cpu: a smoke run at tiny sizes)")
    else:
        device, s, workers = torch.device("cuda"), GPU, a.workers
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = extraction_rows(Path(tmp), s, device, workers) + training_rows(Path(tmp), s, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU smoke run (tiny sizes, 1 thread)"
    print_table(rows, f"{name}; torch {torch.__version__}; {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
