"""Region features of images (the paper's Sec. 3.1.1): detections -> NMS -> top 19 + the whole image
-> fc7 of each box, and their extraction into data/regions/regions.h5 in resumable shards."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dvsa.device import autocast
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


@torch.inference_mode()
def extract_prepared(
    model: RegionCNN,
    prepared: Prepared,
    detect: DetectParams,
    true_boxes: Sequence[np.ndarray] | None = None,
    amp: torch.dtype | None = None,
) -> RegionBatch:
    """The 20 regions of each prepared image and their fc7 features, on the model's device (autocast to
    `amp` when given); the result is on the CPU."""
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
        rois = []
        for i, (boxes, scores) in enumerate(detections):
            boxes, scores = boxes.float().cpu(), scores.float().cpu()
            keep = select_detections(boxes, scores, N_REGIONS - 1, detect.nms_iou, detect.min_score)
            h, w = prepared.images[i].shape[1:]
            net_boxes, region_scores, n = pack_regions(boxes[keep], scores[keep], w, h)  # (20, 4), (20,)
            rois.append(net_boxes[:n].to(device))
            sx, sy = prepared.scale(i)
            width, height = prepared.sizes[i]
            out.boxes[i, :n] = clip_boxes(scale_boxes(net_boxes[:n], sx, sy), width, height).numpy()
            out.scores[i] = region_scores.numpy()
            out.n_regions[i] = n
        feats = model.encode(fmaps, rois).float().cpu().split([len(r) for r in rois])  # (n_i, D) each
    for i, f in enumerate(feats):
        out.feats[i, : len(f)] = f.numpy()
    return out


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
    return extract_prepared(model, model.prepare(list(images)), detect or DetectParams(), true_boxes, amp)


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
    row with n_regions 0 (no region, zero features) and is listed in the shard."""
    parts: list[RegionBatch] = []
    skipped: list[dict[str, Any]] = []
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
        if good:
            prepared = Prepared(
                [to_float(im.pixels.to(model.device, non_blocking=True)) for im in good],  # type: ignore[union-attr]
                [im.size for im in good],
            )
            true_boxes = [records[im.index].boxes for im in good] if detect.proposals == "oracle" else None
            regions = extract_prepared(model, prepared, detect, true_boxes, amp)
            rows = [k for k, im in enumerate(batch) if im.pixels is not None]
            out.feats[rows], out.boxes[rows] = regions.feats, regions.boxes
            out.scores[rows], out.n_regions[rows] = regions.scores, regions.n_regions
        parts.append(out)
        bar.update(len(batch))
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
) -> Extraction:
    """Every image's regions into regions.h5 (row i = records[i]), through shards in `work_dir` (kept after
    an interruption and reused by a rerun with the same `key`; a temporary folder when None); returns per
    split the recall of the true objects (when the images have any) and the skipped images."""
    model.eval()
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
            )
    shards = ShardFolder(work_dir, key, len(records), shard_size)
    todo = [k for k in range(shards.n_shards) if not shards.done(k)]
    kept = shards.n_shards - len(todo)
    done_images = len(records) - sum(len(shards.rows(k)) for k in todo)
    if kept:
        print(f"regions: resuming: {kept} of {shards.n_shards} shards ({done_images} images) kept in {work_dir}")
    start = time.perf_counter()
    loaded = load_images(
        [r.path for r in records],
        [i for k in todo for i in shards.rows(k)],
        model.input_size,
        workers,
        model.device.type == "cuda",
    )
    with tqdm(total=len(records), initial=done_images, desc="regions", unit="img", smoothing=0.1) as bar:
        for k in todo:
            rows = shards.rows(k)
            batches = shard_batches(loaded, rows, batch_size)
            shards.write(
                k, extract_shard(model, records, batches, rows.start, detect, feats_dtype, on_bad_image, amp, bar)
            )
    seconds = time.perf_counter() - start
    n_new = len(records) - done_images
    print(f"regions: {n_new} images in {seconds:.1f} s ({n_new / max(seconds, 1e-9):.2f} images/s)")
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
