"""Resume files shared by the trainers: a typed state, a format tag, a fingerprint, atomic save, exact resume.

A trainer keeps everything that determines the rest of its run in a dataclass of its own (plain containers
and tensors only, so that ``torch.load(weights_only=True)`` reads it back) and calls

    key = ResumeKey("dvsa.<trainer>.resume/1", params.to_dict(), data_fingerprint(labels, store))
    resumed = load_resume(path, key, state, {"model": model, "optimizer": opt}, rng, log)
    ...
    save_resume(path, key, state, {"model": model, "optimizer": opt}, rng)  # after each epoch / validation

``objects`` are anything with ``state_dict()`` / ``load_state_dict()`` (modules, optimizers, schedulers).
Saving also stores the torch RNG (CPU and, when present, CUDA) and the numpy Generator; loading restores
them, so a resumed run continues with the same random numbers. A resume file is used only when its format
tag, params and input fingerprint all match; otherwise (or when it is unreadable, lacks a key or does not
fit the objects) it is ignored with one logged line and the objects are left as they were.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from dvsa.data.labels import Labels
from dvsa.io import save_torch
from dvsa.regions.store import RegionStore


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class ResumeKey:
    """What a resume file must have been made with to be used."""

    format: str  # e.g. "dvsa.alignment.resume/2"; change it when the stored layout changes
    params: dict[str, Any]  # the params section that configures the run (its to_dict())
    inputs: str  # fingerprint of the input data, e.g. data_fingerprint(labels, store)


def digest(*parts: np.ndarray | bytes | str) -> str:
    """sha256 (hex) of arrays (dtype, shape and bytes), bytes and strings, in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.str}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(part if isinstance(part, bytes) else part.encode())
    return h.hexdigest()


def file_digest(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 (hex) of a file's content (e.g. models/region_cnn.pt when a trainer finetunes it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def data_fingerprint(labels: Labels, store: RegionStore) -> str:
    """Content hash of labels.h5 + vocab.json and of regions.h5 (ids, boxes, counts, first and last features).

    The features of every image are not read (regions.h5 of COCO is tens of GB); any regions.h5 the
    `regions` stage writes anew from other images or another CNN changes its boxes or its end features.
    """
    parts = [labels.labels, labels.label_start_ix, labels.label_end_ix, store.image_id, store.boxes, store.n_regions]
    parts.append(repr((len(store), store.dim, sorted(labels.ix_to_word.items()))))
    if len(store):
        parts.append(store.feats([0, len(store) - 1]))
    return digest(*parts)


def save_resume(
    path: str | os.PathLike[str],
    key: ResumeKey,
    state: Any,
    objects: Mapping[str, Stateful],
    rng: np.random.Generator | None = None,
) -> None:
    """Write `state` (a dataclass), the objects' state dicts and the RNG states to `path` (dvsa.io.save_torch)."""
    ckpt = {
        "format": key.format,
        "params": key.params,
        "inputs": key.inputs,
        "state": {f.name: getattr(state, f.name) for f in dataclasses.fields(state)},
        "objects": {name: obj.state_dict() for name, obj in objects.items()},
        "rng": _rng_state(rng),
    }
    save_torch(ckpt, path)


def load_resume(
    path: str | os.PathLike[str],
    key: ResumeKey,
    state: Any,
    objects: Mapping[str, Stateful],
    rng: np.random.Generator | None = None,
    log: Callable[[str], None] = print,
) -> bool:
    """Restore `path` into `state`, `objects` and the RNGs if it matches `key`; True when it did.

    A missing file returns False silently; any other reason not to resume logs one line
    ("ignoring <path>: <why>; training from scratch") and changes nothing.
    """
    p = Path(path)
    if not p.is_file():
        return False
    why = _why_not(p, key, state, objects, rng)
    if isinstance(why, str):
        log(f"ignoring {p}: {why}; training from scratch")
        return False
    before = {name: copy.deepcopy(obj.state_dict()) for name, obj in objects.items()}
    for name, obj in objects.items():
        try:
            obj.load_state_dict(why["objects"][name])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            for undo, o in objects.items():
                o.load_state_dict(before[undo])
            detail = " ".join(line.strip() for line in str(e).splitlines()[:2])  # torch: a header, then the cause
            log(f"ignoring {p}: does not fit the {name} ({type(e).__name__}: {detail}); training from scratch")
            return False
    for f in dataclasses.fields(state):
        setattr(state, f.name, why["state"][f.name])
    _set_rng_state(why["rng"], rng)
    return True


def _why_not(
    p: Path, key: ResumeKey, state: Any, objects: Mapping[str, Stateful], rng: np.random.Generator | None
) -> str | dict[str, Any]:
    """The reason not to resume from `p`, or its contents when every key it needs is there."""
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        return f"not readable ({type(e).__name__})"
    if not isinstance(ckpt, dict) or ckpt.get("format") != key.format:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        return f"format {found!r}, expected {key.format!r}"
    if ckpt.get("params") != key.params:
        return "made with other params"
    if ckpt.get("inputs") != key.inputs:
        return "made from other input data"
    needed = [("state", f.name) for f in dataclasses.fields(state)] + [("objects", name) for name in objects]
    needed += [("rng", "torch")] + ([("rng", "numpy")] if rng is not None else [])
    for section, name in needed:
        if not isinstance(ckpt.get(section), dict) or name not in ckpt[section]:
            return f"no {section}.{name}"
    return ckpt


def _rng_state(rng: np.random.Generator | None) -> dict[str, Any]:
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    if rng is not None:
        out["numpy"] = rng.bit_generator.state
    return out


def _set_rng_state(saved: dict[str, Any], rng: np.random.Generator | None) -> None:
    torch.set_rng_state(saved["torch"])
    if "cuda" in saved and torch.cuda.is_available() and len(saved["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(saved["cuda"])
    if rng is not None:
        rng.bit_generator.state = saved["numpy"]
