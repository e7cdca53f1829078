"""Region features of images (the paper's Sec. 3.1.1): detections -> NMS -> top 19 + the whole image
-> fc7 of each box, and their extraction into data/regions/regions.h5 in resumable shards, shared out
among the ranks of a torchrun run."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dvsa.device import autocast
from dvsa.distributed import World, all_gather_objects, broadcast_object
from dvsa.errors import InputError, ParamsError
from dvsa.regions.boxes import clip_boxes, scale_boxes
from dvsa.regions.config import DetectParams
from dvsa.regions.data import ImageRecord
from dvsa.regions.loader import LoadedImage, load_images
from dvsa.regions.metrics import RecallMeter
from dvsa.regions.model import Prepared, RegionCNN, to_float
from dvsa.regions.select import pack_regions, select_detections
from dvsa.regions.shards import Shard, ShardFolder
from dvsa.regions.store import N_REGIONS

# torch's CPU threads per process while extracting (see extraction_threads)
EXTRACTION_THREADS = 1


@dataclass
class RegionBatch:
    feats: np.ndarray  # (B, 20, D) float32, zero rows for padding
    boxes: np.ndarray  # (B, 20, 4) float32 xyxy in the original images' pixels
    scores: np.ndarray  # (B, 20) float32; region 0 (the whole image) scores 1
    n_regions: np.ndarray  # (B,) int32: rows 0..n-1 are real


@dataclass
class Extraction:
    """What `write_regions` reports besides regions.h5."""

    recall: dict[str, dict[str, float | int]]  # per split, when the images have true objects
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"index", "path", "error"}
    kept_shards: int = 0  # shards reused from an interrupted run


@dataclass
class PendingRegions:
    """A batch's regions whose features may still be on their way to the host (on CUDA, copied while the
    next batch runs): :meth:`wait` gives the RegionBatch."""

    out: RegionBatch  # boxes, scores and n_regions filled; feats once waited for
    feats: torch.Tensor  # (sum of n_i, D) on the host, pinned on CUDA
    copied: torch.cuda.Event | None  # the end of the copy (None: already on the host)

    def wait(self) -> RegionBatch:
        if self.copied is not None:
            self.copied.synchronize()
        for i, f in enumerate(self.feats.split(self.out.n_regions.tolist())):  # (n_i, D) each
            self.out.feats[i, : len(f)] = f.numpy()
        return self.out


@functools.cache
def copy_stream(device: torch.device) -> torch.cuda.Stream:
    """The CUDA stream of the copies to the host, one per GPU."""
    return torch.cuda.Stream(device)


def to_host(t: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """t on the host. On CUDA the copy does not wait: it goes into pinned memory on a stream of its own, so
    that it overlaps the next batch's work; the event marks its end."""
    if t.device.type != "cuda":
        return t.cpu(), None
    stream = copy_stream(t.device)
    stream.wait_stream(torch.cuda.current_stream(t.device))  # t is computed
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    with torch.cuda.stream(stream):
        host.copy_(t, non_blocking=True)
    t.record_stream(stream)  # t's memory is not reused before the copy is done
    copied = torch.cuda.Event()
    copied.record(stream)
    return host, copied


@torch.inference_mode()
def extract_prepared(
    model: RegionCNN,
    prepared: Prepared,
    detect: DetectParams,
    true_boxes: Sequence[np.ndarray] | None = None,
    amp: torch.dtype | None = None,
) -> PendingRegions:
    """The 20 regions of each prepared image and their fc7 features, on the model's device (autocast to
    `amp` when given); the result is on the CPU, its features once waited for."""
    device = model.device
    with autocast(device, amp):
        fmaps = model.features(prepared)
        if detect.proposals == "oracle":
            if true_boxes is None:
                raise InputError(
                    "regions.detect.proposals: oracle needs the true boxes of the images (shapes world only)"
                )
            detections = []
            for i, boxes in enumerate(true_boxes):
                sx, sy = prepared.scale(i)
                detections.append(
                    (scale_boxes(torch.as_tensor(boxes, dtype=torch.float32), 1 / sx, 1 / sy), torch.ones(len(boxes)))
                )
        else:
            detections = model.detect(prepared, fmaps, detect)
        b = len(prepared.images)
        out = RegionBatch(
            np.zeros((b, N_REGIONS, model.fc7_dim), np.float32),
            np.zeros((b, N_REGIONS, 4), np.float32),
            np.zeros((b, N_REGIONS), np.float32),
            np.zeros(b, np.int32),
        )
        counts = [len(boxes) for boxes, _ in detections]
        all_boxes = torch.cat([boxes.float() for boxes, _ in detections]).cpu().split(counts)  # one copy
        all_scores = torch.cat([scores.float() for _, scores in detections]).cpu().split(counts)
        rois = []
        for i, (boxes, scores) in enumerate(zip(all_boxes, all_scores)):
            keep = select_detections(boxes, scores, N_REGIONS - 1, detect.nms_iou, detect.min_score)
            h, w = prepared.images[i].shape[1:]
            net_boxes, region_scores, n = pack_regions(boxes[keep], scores[keep], w, h)  # (20, 4), (20,)
            rois.append(net_boxes[:n])
            sx, sy = prepared.scale(i)
            width, height = prepared.sizes[i]
            out.boxes[i, :n] = clip_boxes(scale_boxes(net_boxes[:n], sx, sy), width, height).numpy()
            out.scores[i] = region_scores.numpy()
            out.n_regions[i] = n
        rois = list(torch.cat(rois).to(device).split([len(r) for r in rois]))
        feats, copied = to_host(model.encode(fmaps, rois).float())  # (sum of n_i, D)
    return PendingRegions(out, feats, copied)


def extract_regions(
    model: RegionCNN,
    images: Sequence[Image.Image],
    detect: DetectParams | None = None,
    true_boxes: Sequence[np.ndarray] | None = None,
    amp: torch.dtype | None = None,
) -> RegionBatch:
    """The 20 regions of each RGB image and their fc7 features.

    `true_boxes` (original pixels, per image) are used only by the ``oracle`` proposals ablation.
    """
    model.eval()
    return extract_prepared(model, model.prepare(list(images)), detect or DetectParams(), true_boxes, amp).wait()


def shard_batches(loaded: Iterator[LoadedImage], rows: range, batch_size: int) -> Iterator[list[LoadedImage]]:
    """The images of one shard's `rows` from the `loaded` stream, in batches that never cross the shard."""
    batch: list[LoadedImage] = []
    for _ in rows:
        batch.append(next(loaded))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def fill_rows(out: RegionBatch, rows: list[int], pending: PendingRegions) -> None:
    """Rows `rows` of `out` (a batch with unreadable images) from the regions of its readable images."""
    regions = pending.wait()
    out.feats[rows], out.boxes[rows] = regions.feats, regions.boxes
    out.scores[rows], out.n_regions[rows] = regions.scores, regions.n_regions


def extract_shard(
    model: RegionCNN,
    records: Sequence[ImageRecord],
    batches: Iterator[list[LoadedImage]],
    start: int,
    detect: DetectParams,
    feats_dtype: str,
    on_bad_image: str,
    amp: torch.dtype | None,
    bar: tqdm,
) -> Shard:
    """The regions of one shard's images. A bad image stops with its one-line error, or with ``skip`` gets a
    row with n_regions 0 (no region, zero features) and is listed in the shard. A batch's features come to
    the host while the next batch runs (on CUDA; see :func:`to_host`)."""
    parts: list[RegionBatch] = []
    skipped: list[dict[str, Any]] = []
    previous: tuple[RegionBatch, list[int], PendingRegions] | None = None
    for batch in batches:
        good = [im for im in batch if im.pixels is not None]
        for im in batch:
            if im.pixels is None:
                if on_bad_image == "error":
                    raise InputError(f"{im.error} (regions.on_bad_image: skip leaves it out)")
                skipped.append({"index": im.index, "path": str(records[im.index].path), "error": im.error})
        out = RegionBatch(
            np.zeros((len(batch), N_REGIONS, model.fc7_dim), np.float32),
            np.zeros((len(batch), N_REGIONS, 4), np.float32),
            np.zeros((len(batch), N_REGIONS), np.float32),
            np.zeros(len(batch), np.int32),
        )
        pending = None
        if good:
            prepared = Prepared(
                [to_float(im.pixels.to(model.device, non_blocking=True)) for im in good],  # type: ignore[union-attr]
                [im.size for im in good],
            )
            true_boxes = [records[im.index].boxes for im in good] if detect.proposals == "oracle" else None
            pending = extract_prepared(model, prepared, detect, true_boxes, amp)
        if previous is not None:  # the previous batch's features have arrived meanwhile
            fill_rows(*previous)
        rows = [k for k, im in enumerate(batch) if im.pixels is not None]
        previous = (out, rows, pending) if pending is not None else None
        parts.append(out)
        bar.update(len(batch))
    if previous is not None:
        fill_rows(*previous)
    rows = range(start, start + sum(len(p.n_regions) for p in parts))
    with np.errstate(over="ignore"):
        feats = np.concatenate([p.feats for p in parts]).astype(feats_dtype)
    if not np.isfinite(feats).all():
        first = rows[int(np.nonzero(~np.isfinite(feats).all(axis=(1, 2)))[0][0])]
        raise ParamsError(
            f"regions.feats_dtype: {records[first].path}: features are not finite in {feats_dtype} "
            "(beyond ±65504, or NaN); set regions.feats_dtype: float32"
            + (" (and compute.autocast: off if it persists)" if amp is not None else "")
        )
    return Shard(
        start,
        feats,
        np.concatenate([p.boxes for p in parts]),
        np.concatenate([p.scores for p in parts]),
        np.concatenate([p.n_regions for p in parts]),
        np.array([records[i].image_id for i in rows], dtype=np.int64),
        skipped,
    )


@contextmanager
def extraction_threads() -> Iterator[None]:
    """torch's CPU threads fixed at EXTRACTION_THREADS for the body, then restored.

    How a CPU operation splits its sums among threads can change the last bit of its result (the shapes
    detector's scores differ at 8 threads from 1), and the thread count otherwise depends on compute.nproc:
    torchrun starts each of several ranks with OMP_NUM_THREADS=1, a process of its own gets every core. A
    fixed count makes regions.h5 the same whatever compute.nproc, so that a shard is reusable by a rerun with
    another one (the fingerprint leaves the world size out). One thread: on the CPU, compute.nproc uses the
    cores (a process each), and the shapes network's small operations run faster on one thread anyway.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(EXTRACTION_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def open_shards(
    work_dir: Path, key: str, n_images: int, shard_size: int, world: World
) -> tuple[ShardFolder, list[int]]:
    """The work folder and the shards still to extract, the same on every rank.

    Rank 0 opens the folder (emptying one left by other inputs) and lists the unfinished shards; the others
    open it only once they have rank 0's list (the broadcast waits for it), so that no rank reads the folder
    while rank 0 empties it, and all share out the same list (a rank that listed it later could miss a shard
    another rank has finished meanwhile, or find one more).
    """
    first = ShardFolder(work_dir, key, n_images, shard_size) if world.main else None
    todo: list[int] = broadcast_object([k for k in range(first.n_shards) if not first.done(k)] if first else [])
    return first or ShardFolder(work_dir, key, n_images, shard_size, create=False), todo


def extract_shards(
    model: RegionCNN,
    records: Sequence[ImageRecord],
    shards: ShardFolder,
    mine: Sequence[int],
    detect: DetectParams,
    batch_size: int,
    feats_dtype: str,
    on_bad_image: str,
    workers: int,
    amp: torch.dtype | None,
    bar: tqdm,
) -> int:
    """Extract and write shards `mine`, in order, their images decoded by `workers` processes; return the
    number of images extracted."""
    if not mine:
        return 0
    loaded = load_images(
        [r.path for r in records],
        [i for k in mine for i in shards.rows(k)],
        model.input_size,
        workers,
        model.device.type == "cuda",
    )
    n = 0
    for k in mine:
        rows = shards.rows(k)
        batches = shard_batches(loaded, rows, batch_size)
        shards.write(k, extract_shard(model, records, batches, rows.start, detect, feats_dtype, on_bad_image, amp, bar))
        n += len(rows)
    return n


def progress_bar(n_images: int, done_images: int, mine_images: int, world: World) -> tqdm:
    """Rank 0's bar: the whole dataset in a run of one process, rank 0's share of the shards left in a run of
    several (the ranks' shares differ by at most one shard). The other ranks show none: their bars would
    overwrite each other's line."""
    if world.size == 1:
        return tqdm(total=n_images, initial=done_images, desc="regions", unit="img", smoothing=0.1)
    return tqdm(
        total=mine_images, desc=f"regions, rank 0 of {world.size}", unit="img", smoothing=0.1, disable=not world.main
    )


def throughput_line(done: Sequence[tuple[int, float]]) -> str:
    """The images extracted and the time taken, over all ranks and (with several) per rank; `done` holds
    each rank's (images, seconds), all timed from the same start (once the shards were shared out)."""
    n = sum(images for images, _ in done)
    seconds = max(max(s for _, s in done), 1e-9)  # the slowest rank's
    line = f"regions: {n} images in {seconds:.1f} s ({n / seconds:.2f} images/s)"
    if len(done) == 1:
        return line
    ranks = ", ".join(f"rank {r}: {images} in {s:.1f} s" for r, (images, s) in enumerate(done))
    return f"{line} on {len(done)} processes ({ranks})"


def write_regions(
    model: RegionCNN,
    records: Sequence[ImageRecord],
    out_path: str | os.PathLike[str],
    detect: DetectParams,
    batch_size: int,
    feats_dtype: str,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    key: str = "",
    shard_size: int = 256,
    on_bad_image: str = "error",
    workers: int = 0,
    amp: torch.dtype | None = None,
    world: World | None = None,
) -> Extraction | None:
    """Every image's regions into regions.h5 (row i = records[i]), through shards in `work_dir` (kept after
    an interruption and reused by a rerun with the same `key`; a temporary folder when None); returns per
    split the recall of the true objects (when the images have any) and the skipped images.

    Under torchrun (`world` of several ranks, default one, in a process group; `work_dir` on a file system
    they share) the unfinished shards are dealt out in turn, rank r taking the r-th, the (r + W)-th, ...: in a
    fresh run, the shards k with k % W == r. Every rank waits until all shards are written; then rank 0 alone assembles
    regions.h5 and returns, and the other ranks return None. Shards never depend on which rank or how many
    wrote them (batches never cross a shard, the CPU threads are fixed), so regions.h5 is the same bit for
    bit whatever the world size, and a rerun with another one reuses the finished shards.
    """
    model.eval()
    world = world or World()
    if work_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            return write_regions(
                model,
                records,
                out_path,
                detect,
                batch_size,
                feats_dtype,
                work_dir=Path(tmp) / "work",
                key=key,
                shard_size=shard_size,
                on_bad_image=on_bad_image,
                workers=workers,
                amp=amp,
                world=world,
            )
    shards, todo = open_shards(Path(work_dir), key, len(records), shard_size, world)
    kept = shards.n_shards - len(todo)
    done_images = len(records) - sum(len(shards.rows(k)) for k in todo)
    if kept and world.main:
        print(
            f"regions: resuming: {kept} of {shards.n_shards} shards ({done_images} images) kept in {work_dir}"
            + (f"; the other {len(todo)} shared by {world.size} processes" if world.size > 1 else "")
        )
    mine = todo[world.rank :: world.size]
    mine_images = sum(len(shards.rows(k)) for k in mine)
    start = time.perf_counter()
    with extraction_threads(), progress_bar(len(records), done_images, mine_images, world) as bar:
        n = extract_shards(
            model, records, shards, mine, detect, batch_size, feats_dtype, on_bad_image, workers, amp, bar
        )
    done = all_gather_objects((n, time.perf_counter() - start))  # waits for every rank's shards
    if not world.main:
        return None
    print(throughput_line(done))
    parts = shards.assemble(out_path, model.fc7_dim, feats_dtype)
    shards.remove()
    meters: dict[str, RecallMeter] = {}
    for part in parts:
        for j, n in enumerate(part.n_regions):
            r = records[part.start + j]
            if len(r.boxes) and n > 0:
                meters.setdefault(r.split, RecallMeter(0.5)).add(part.boxes[j, 1:n], r.boxes)
    skipped = [s for part in parts for s in part.skipped]
    return Extraction({split: m.result() for split, m in sorted(meters.items())}, skipped, kept)
