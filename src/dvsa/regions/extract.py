"""Region features of images (the paper's Sec. 3.1.1): detections -> NMS -> top 19 + the whole image
-> fc7 of each box, and their streaming into data/regions/regions.h5."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dvsa.errors import InputError
from dvsa.regions.boxes import clip_boxes, scale_boxes
from dvsa.regions.config import DetectParams
from dvsa.regions.data import ImageRecord, batches
from dvsa.regions.metrics import RecallMeter
from dvsa.regions.model import RegionCNN
from dvsa.regions.select import pack_regions, select_detections
from dvsa.regions.store import N_REGIONS, RegionWriter


@dataclass
class RegionBatch:
    feats: np.ndarray  # (B, 20, D) float32, zero rows for padding
    boxes: np.ndarray  # (B, 20, 4) float32 xyxy in the original images' pixels
    scores: np.ndarray  # (B, 20) float32; region 0 (the whole image) scores 1
    n_regions: np.ndarray  # (B,) int32: rows 0..n-1 are real


@torch.no_grad()
def extract_regions(
    model: RegionCNN,
    images: Sequence[Image.Image],
    detect: DetectParams | None = None,
    true_boxes: Sequence[np.ndarray] | None = None,
) -> RegionBatch:
    """The 20 regions of each RGB image and their fc7 features.

    `true_boxes` (original pixels, per image) are used only by the ``oracle`` proposals ablation.
    """
    detect = detect or DetectParams()
    model.eval()
    prepared = model.prepare(list(images))
    fmaps = model.features(prepared)
    if detect.proposals == "oracle":
        if true_boxes is None:
            raise InputError("regions.detect.proposals: oracle needs the true boxes of the images (shapes world only)")
        detections = []
        for i, boxes in enumerate(true_boxes):
            sx, sy = prepared.scale(i)
            detections.append((scale_boxes(torch.as_tensor(boxes, dtype=torch.float32), 1 / sx, 1 / sy),
                               torch.ones(len(boxes))))
    else:
        detections = model.detect(prepared, fmaps, detect.n_proposals)
    b = len(images)
    out = RegionBatch(
        np.zeros((b, N_REGIONS, model.fc7_dim), np.float32),
        np.zeros((b, N_REGIONS, 4), np.float32),
        np.zeros((b, N_REGIONS), np.float32),
        np.zeros(b, np.int32),
    )
    rois = []
    for i, (boxes, scores) in enumerate(detections):
        keep = select_detections(boxes, scores, N_REGIONS - 1, detect.nms_iou, detect.min_score)
        h, w = prepared.images[i].shape[1:]
        net_boxes, region_scores, n = pack_regions(boxes[keep], scores[keep], w, h)  # (20, 4), (20,)
        rois.append(net_boxes[:n])
        sx, sy = prepared.scale(i)
        width, height = prepared.sizes[i]
        out.boxes[i, :n] = clip_boxes(scale_boxes(net_boxes[:n], sx, sy), width, height).numpy()
        out.scores[i] = region_scores.numpy()
        out.n_regions[i] = n
    feats = model.encode(fmaps, rois).split([len(r) for r in rois])  # (n_i, D) each
    for i, f in enumerate(feats):
        out.feats[i, : len(f)] = f.numpy()
    return out


def write_regions(
    model: RegionCNN,
    records: Sequence[ImageRecord],
    out_path: str | os.PathLike[str],
    detect: DetectParams,
    batch_size: int,
    feats_dtype: str,
) -> dict[str, dict[str, float | int]]:
    """Stream every image's regions into regions.h5 (row i = records[i]); return per split the recall of
    the true objects (when the images have any), accumulated as the batches go by."""
    meters: dict[str, RecallMeter] = {}
    start = time.perf_counter()
    with RegionWriter(out_path, len(records), model.fc7_dim, feats_dtype) as writer:
        with tqdm(total=len(records), desc="regions", unit="img", smoothing=0.1) as bar:
            for chunk, images in batches(records, batch_size):
                true_boxes = [r.boxes for r in chunk] if detect.proposals == "oracle" else None
                regions = extract_regions(model, images, detect, true_boxes)
                writer.append(regions.feats, regions.boxes, regions.scores, regions.n_regions,
                              np.array([r.image_id for r in chunk], dtype=np.int64))
                for i, r in enumerate(chunk):
                    if len(r.boxes):
                        meter = meters.setdefault(r.split, RecallMeter(0.5))
                        meter.add(regions.boxes[i, 1 : regions.n_regions[i]], r.boxes)
                bar.update(len(chunk))
    seconds = time.perf_counter() - start
    print(f"regions: {len(records)} images in {seconds:.1f} s ({len(records) / max(seconds, 1e-9):.1f} images/s)")
    return {split: m.result() for split, m in sorted(meters.items())}
