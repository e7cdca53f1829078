"""The region CNN for real photos, assembled from pretrained torchvision weights (never downloaded).

Encoder: VGG16 or AlexNet trained on ImageNet, in the Fast R-CNN form: conv layers up to conv5 (stride 16)
once per image, RoIAlign of each box to the grid the classifier expects (7x7 or 6x6, replacing the last
max-pool), then the classifier's fc6 -> fc7 (4096-d). Detector: a torchvision Faster R-CNN trained on COCO.

Weight files are looked up in the torch hub cache ($TORCH_HOME/hub/checkpoints/, under the names that
torchvision gives them) or at explicit paths; a missing file is a WeightsError that names the file and
where to put it. models/region_cnn.pt does not copy them (500-700 MB): it references each file by its
absolute path and sha256, checked whenever the model is loaded.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import alexnet, vgg16
from torchvision.models.detection import (
    fasterrcnn_mobilenet_v3_large_320_fpn,
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn,
)
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import roi_align

from dvsa.errors import WeightsError
from dvsa.hashing import file_digest
from dvsa.regions.boxes import clip_boxes, scale_boxes
from dvsa.regions.config import DetectParams, PretrainedParams
from dvsa.regions.model import Prepared, RegionCNN
from dvsa.regions.padded import pad_images, run_padded, strided_extents, strided_padding

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOADS = "https://download.pytorch.org/models"
CONV5_STRIDE = 16
MIN_SIDE = 64  # network pixels: AlexNet's conv layers need >= 31, VGG16's >= 16
NHWC = torch.channels_last


@dataclass(frozen=True)
class Arch:
    """A torchvision architecture (built without weights) and the file name of its pretrained weights."""

    build: Callable[[], nn.Module]
    filename: str
    roi_size: int = 0  # encoders: the grid that fc6 expects


ENCODERS: dict[str, Arch] = {
    "vgg16": Arch(lambda: vgg16(weights=None), "vgg16-397923af.pth", 7),
    "alexnet": Arch(lambda: alexnet(weights=None), "alexnet-owt-7be5be79.pth", 6),
}
_DETECTOR_OPTIONS: dict[str, Any] = {
    "weights": None,
    "weights_backbone": None,
    "box_score_thresh": 0.0,
    "box_detections_per_img": 100,
}
DETECTORS: dict[str, Arch] = {
    "fasterrcnn_resnet50_fpn": Arch(
        lambda: fasterrcnn_resnet50_fpn(**_DETECTOR_OPTIONS), "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
    ),
    "fasterrcnn_mobilenet_v3_large_fpn": Arch(
        lambda: fasterrcnn_mobilenet_v3_large_fpn(**_DETECTOR_OPTIONS), "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
    ),
    "fasterrcnn_mobilenet_v3_large_320_fpn": Arch(
        lambda: fasterrcnn_mobilenet_v3_large_320_fpn(**_DETECTOR_OPTIONS),
        "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
    ),
}


def hub_checkpoints() -> Path:
    """$TORCH_HOME/hub/checkpoints (torch's default: ~/.cache/torch/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(arch: Arch, override: str, param: str) -> Path:
    """The weights file of `arch`: `override` when set, else the hub cache; missing -> WeightsError naming
    regions.`param` (e.g. ``vgg16.encoder_weights``)."""
    if override:
        path = Path(override)
        if not path.is_file():
            raise WeightsError(f"{path}: weights file not found (set by regions.{param} in params.yaml)")
        return path
    path = hub_checkpoints() / arch.filename
    if not path.is_file():
        raise WeightsError(
            f"{arch.filename} not found: put torchvision's file ({DOWNLOADS}/{arch.filename}) in "
            f"{path.parent}/ or set regions.{param} in params.yaml to its path"
        )
    return path


def load_weights(module: nn.Module, path: Path, name: str, assign: bool) -> None:
    """Load a torchvision state-dict file into `module` (the same architecture, built without weights).

    `assign` keeps the file's tensors as the parameters (for modules built on the meta device). BatchNorm
    counters (num_batches_tracked), which torchvision's frozen-BN files lack, may be missing.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise WeightsError(f"{path}: cannot read it as a state dict for {name} ({type(e).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors) for {name}")
    expected = module.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise WeightsError(
            f"{path}: does not fit torchvision's {name} ({len(missing)} missing keys, e.g. "
            f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})"
        )
    try:
        module.load_state_dict(state, strict=False, assign=assign)
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e).splitlines()[0])
        raise WeightsError(f"{path}: does not fit torchvision's {name} ({first})") from None


def build_encoder(backbone: str) -> nn.Module:
    """torchvision's VGG16/AlexNet on the meta device: no memory, no random init, weights to be assigned."""
    with torch.device("meta"):
        return ENCODERS[backbone].build()


def reference(path: Path) -> dict[str, str]:
    """How models/region_cnn.pt names a weights file: its absolute path and sha256 (computed at first use)."""
    return {"path": str(path.resolve()), "sha256": file_digest(path)}


def check_reference(ref: dict[str, str], arch: Arch, param: str, where: str) -> Path:
    """The file `ref` names, if it is still there with the same sha256; else a one-line WeightsError."""
    path = Path(ref["path"])
    fix = f"or set regions.{param} and rerun `dvc repro -f region_cnn`"
    if not path.is_file():
        raise WeightsError(
            f"{path}: weights file not found ({where} was assembled from it, sha256 "
            f"{ref['sha256'][:16]}...); put torchvision's {arch.filename} there {fix}"
        )
    digest = file_digest(path)
    if digest != ref["sha256"]:
        raise WeightsError(
            f"{path}: weights file changed since {where} was assembled (sha256 {digest[:16]}..., "
            f"expected {ref['sha256'][:16]}...); put the original file back {fix}"
        )
    return path


class PretrainedRegionCNN(RegionCNN):
    kind = "pretrained"
    fc7_dim = 4096

    def __init__(
        self,
        backbone: str,
        pretrained: PretrainedParams,
        encoder: nn.Module,
        detector: nn.Module,
        weights: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """`weights`: the references of the files the weights came from ({"encoder": ..., "detector": ...})."""
        super().__init__()
        self.backbone, self.pretrained, self.weights = backbone, pretrained, weights or {}
        self.roi_size = ENCODERS[backbone].roi_size
        self.trunk = encoder.features[:-1]  # up to conv5 + ReLU; RoIAlign replaces the last max-pool
        self.fc = encoder.classifier[:-1]  # fc6, ReLU, (dropout), fc7, ReLU: the 4096-d feature
        self.detector = detector
        self.detector_sizes = (detector.transform.min_size, detector.transform.max_size)  # torchvision's own
        self.batch_images: bool | None = None  # see batched()
        for convs in (self.trunk, detector.backbone):  # NHWC convolutions: ~1.4x faster on CPU (oneDNN) and GPU
            convs.to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    @classmethod
    def assemble(cls, backbone: str, pretrained: PretrainedParams) -> PretrainedRegionCNN:
        """Build from the pretrained weight files (see :func:`weights_path`), recording their references."""
        enc_path = weights_path(ENCODERS[backbone], pretrained.encoder_weights, f"{backbone}.encoder_weights")
        det_path = weights_path(
            DETECTORS[pretrained.detector], pretrained.detector_weights, f"{backbone}.detector_weights"
        )
        refs = {"encoder": reference(enc_path), "detector": reference(det_path)}
        return cls.load(backbone, pretrained, {"encoder": enc_path, "detector": det_path}, refs)

    @classmethod
    def from_references(
        cls, backbone: str, pretrained: PretrainedParams, refs: dict[str, dict[str, str]], where: str
    ) -> PretrainedRegionCNN:
        """Rebuild from the files a checkpoint references, after checking that each is unchanged."""
        paths = {
            "encoder": check_reference(refs["encoder"], ENCODERS[backbone], f"{backbone}.encoder_weights", where),
            "detector": check_reference(
                refs["detector"], DETECTORS[pretrained.detector], f"{backbone}.detector_weights", where
            ),
        }
        return cls.load(backbone, pretrained, paths, refs)

    @classmethod
    def load(
        cls, backbone: str, pretrained: PretrainedParams, paths: dict[str, Path], refs: dict[str, dict[str, str]]
    ) -> PretrainedRegionCNN:
        encoder = build_encoder(backbone)
        load_weights(encoder, paths["encoder"], backbone, assign=True)
        detector = DETECTORS[pretrained.detector].build()  # on the CPU: its anchors are plain tensors, not buffers
        load_weights(detector, paths["detector"], pretrained.detector, assign=True)
        return cls(backbone, pretrained, encoder, detector, refs).eval()

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """Shorter side to min_size, longer side at most max_size (aspect kept), as Fast R-CNN; a very
        elongated image (e.g. 5000 x 20) is stretched so that its shorter side keeps MIN_SIDE pixels."""
        s = min(self.pretrained.min_size / min(width, height), self.pretrained.max_size / max(width, height))
        return max(MIN_SIDE, round(width * s)), max(MIN_SIDE, round(height * s))

    def batched(self, n_images: int) -> bool:
        """Whether the trunk and the detector take `n_images` at once (:attr:`batch_images`; None: on CUDA,
        where a batch fills the GPU, and never on the CPU, where it would only multiply the memory) or one
        at a time. Either way each image's boxes and features are those of its own run (dvsa.regions.padded),
        up to the order of float sums."""
        on = self.batch_images if self.batch_images is not None else self.device.type == "cuda"
        return on and n_images > 1

    def features(self, prepared: Prepared) -> list[torch.Tensor]:
        xs = [(x.to(self.mean.device) - self.mean) / self.std for x in prepared.images]  # (3, h, w) each
        if not self.batched(len(xs)):
            return [self.trunk(x[None].contiguous(memory_format=NHWC)) for x in xs]  # (1, C, h/16, w/16) each
        fmaps, extents = run_padded(
            self.trunk, pad_images(xs).contiguous(memory_format=NHWC), [tuple(x.shape[1:]) for x in xs]
        )  # (B, C, H/16, W/16)
        return [fmaps[i : i + 1, :, :h, :w] for i, (h, w) in enumerate(extents)]  # each image's own map

    def detect(self, prepared: Prepared, fmaps: Any, params: DetectParams) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The RPN's best `n_proposals` proposals of each image, each scored by the detector's best object
        class with that class's regressed box; the images in one batch or one at a time (:meth:`batched`)."""
        t = self.detector.transform
        t.min_size = (params.min_size,) if params.min_size else self.detector_sizes[0]
        t.max_size = params.max_size or self.detector_sizes[1]
        xs = [x.to(self.mean.device) for x in prepared.images]
        groups = [xs] if self.batched(len(xs)) else [[x] for x in xs]
        return [d for group in groups for d in self.detect_batch(group, params.n_proposals)]

    def detect_batch(self, xs: list[torch.Tensor], n_proposals: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Boxes (P, 4) in x's pixels and scores (P,) of each image x (3, h, w) in [0, 1] of `xs`.

        The backbone runs once over the padded batch, each image reading its own padding
        (dvsa.regions.padded.strided_padding); the RPN and the RoI pooling run per image on its own part of
        the feature maps (their anchors and bilinear samples depend on the map's size); the box head and
        predictor run once over all the images' proposals.
        """
        d = self.detector
        images, _ = d.transform(xs)  # normalised, resized to the detector's size, padded to a multiple of 32
        full = (images.tensors.shape[2], images.tensors.shape[3])
        divisor = d.transform.size_divisible
        own = [(math.ceil(h / divisor) * divisor, math.ceil(w / divisor) * divisor) for h, w in images.image_sizes]
        with strided_padding(d.backbone, own, full):
            fmaps = d.backbone(images.tensors.contiguous(memory_format=NHWC))  # {level: (B, 256, H/s, W/s)}
        levels = {k: strided_extents(own, full, (f.shape[2], f.shape[3])) for k, f in fmaps.items()}
        proposals, pooled = [], []
        for i, (h, w) in enumerate(own):
            mine = OrderedDict((k, f[i : i + 1, :, : levels[k][i][0], : levels[k][i][1]]) for k, f in fmaps.items())
            one = ImageList(images.tensors[i : i + 1, :, :h, :w], [images.image_sizes[i]])
            proposals.append(d.rpn(one, mine)[0][0][:n_proposals])  # best first
            pooled.append(d.roi_heads.box_roi_pool(mine, proposals[-1:], one.image_sizes))  # (P_i, 256, 7, 7)
        logits, deltas = d.roi_heads.box_predictor(d.roi_heads.box_head(torch.cat(pooled)))  # (P, C), (P, 4C)
        scores, classes = logits.float().softmax(-1)[:, 1:].max(1)  # (P,): the best object class
        boxes = d.roi_heads.box_coder.decode(deltas.float(), proposals).reshape(len(deltas), -1, 4)  # (P, C, 4)
        boxes = boxes[torch.arange(len(boxes), device=boxes.device), classes + 1]  # (P, 4)
        out = []
        counts = [len(p) for p in proposals]
        for x, (ih, iw), b, s in zip(xs, images.image_sizes, boxes.split(counts), scores.split(counts)):
            out.append((scale_boxes(clip_boxes(b, iw, ih), x.shape[2] / iw, x.shape[1] / ih), s))
        return out

    def encode(self, fmaps: Any, rois: list[torch.Tensor]) -> torch.Tensor:
        pooled = [
            roi_align(f, [r.to(f.device, f.dtype)], self.roi_size, 1.0 / CONV5_STRIDE, sampling_ratio=-1, aligned=True)
            for f, r in zip(fmaps, rois)
        ]
        return self.fc(torch.cat(pooled).flatten(1))  # (R, 4096)

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "weights": self.weights}
