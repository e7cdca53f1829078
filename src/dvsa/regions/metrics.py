"""How well the 19 detected regions cover the true objects of the shapes world, and how well the
detector's head names them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.ops import box_iou
from tqdm import tqdm

from dvsa.regions.boxes import scale_boxes
from dvsa.regions.data import ImageRecord, batches
from dvsa.regions.shapes_net import ShapesRegionCNN


class RecallMeter:
    """Recall of true objects among detected regions at IoU >= `iou`, and the mean IoU of each object's
    best-matching region. Running sums: memory does not grow with the number of images."""

    def __init__(self, iou: float = 0.5) -> None:
        self.iou = iou
        self.n_images = self.n_objects = self.hits = 0
        self.iou_sum = 0.0

    def add(self, regions: np.ndarray, objects: np.ndarray) -> None:
        """regions (n, 4) detected boxes (not the whole-image region 0), objects (G, 4) true boxes."""
        self.n_images += 1
        if len(objects) == 0:
            return
        if len(regions) == 0:
            best = np.zeros(len(objects))
        else:
            best = box_iou(torch.from_numpy(objects).float(), torch.from_numpy(regions).float()).max(1).values.numpy()
        self.n_objects += len(objects)
        self.hits += int((best >= self.iou).sum())
        self.iou_sum += float(best.sum())

    def result(self) -> dict[str, float | int]:
        n = max(self.n_objects, 1)
        return {
            f"recall_iou{round(self.iou * 100)}": self.hits / n,
            "mean_best_iou": self.iou_sum / n,
            "n_objects": self.n_objects,
            "n_images": self.n_images,
        }


@torch.no_grad()
def classify_true_boxes(
    model: ShapesRegionCNN, records: Sequence[ImageRecord], batch_size: int = 64
) -> Iterator[tuple[list[ImageRecord], list[Image.Image], list[int]]]:
    """Per batch of records: the records, their images and the head's class (0 = background, k = classes[k - 1])
    of each of their true boxes, in record then box order."""
    model.eval()
    for chunk, images in tqdm(
        batches(records, batch_size),
        desc="val accuracy",
        unit="batch",
        leave=False,
        total=-(-len(records) // batch_size),
    ):
        prepared = model.prepare(images)
        rois = []
        for i, r in enumerate(chunk):
            sx, sy = prepared.scale(i)
            rois.append(scale_boxes(torch.from_numpy(r.boxes), 1 / sx, 1 / sy).to(model.device))
        yield chunk, images, model.classify(model.features(prepared), rois).argmax(1).tolist()  # (sum G,)


def object_accuracy(model: ShapesRegionCNN, records: Sequence[ImageRecord], batch_size: int = 64) -> float:
    """Detector accuracy: the fraction of true objects whose true box the head classifies as its label
    (among the K classes + background). Labels unseen in training count as errors."""
    index = {c: k + 1 for k, c in enumerate(model.classes)}
    correct = total = 0
    for chunk, _, pred in classify_true_boxes(model, records, batch_size):
        truth = [index.get(label, -1) for r in chunk for label in r.labels]
        correct += sum(p == t for p, t in zip(pred, truth))
        total += len(truth)
    return correct / max(total, 1)
