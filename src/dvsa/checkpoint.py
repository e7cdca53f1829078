"""The one home of dvsa's torch files (models/*.pt and the trainers' resume files): atomic save, and one
validity check on load (the file is there and readable with ``weights_only=True``, a dict, with the expected
format tag). docs/design.md, "Files between stages", lists the formats.

Every payload is plain containers and tensors, so it loads without unpickling code, and the same payload
gives the same bytes (dvc.lock hashes them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dvsa.errors import InputError
from dvsa.io import save_torch

FORMAT = "format"  # the key of every dvsa payload's format tag, e.g. "dvsa.alignment/2"


def save(path: str | os.PathLike[str], format: str, payload: dict[str, Any]) -> None:
    """Write `payload` tagged with `format` to `path` atomically (an interrupt leaves the old file or none)."""
    save_torch({FORMAT: format, **payload}, path)


def read(path: str | os.PathLike[str], format: str) -> dict[str, Any] | str:
    """The payload of `path`, or why it is not a `format` file (one line). A missing file is also a reason."""
    p = Path(path)
    if p.is_dir():
        return "is a directory, not a checkpoint file"
    if not p.is_file():
        return "file not found"
    if p.stat().st_size == 0:
        return "empty file, not a checkpoint"
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        return f"not a readable torch file (torch.load: {type(e).__name__})"
    if not isinstance(data, dict):
        return f"not a dvsa checkpoint (a {type(data).__name__}, expected a dict)"
    if data.get(FORMAT) != format:
        return f"format {data.get(FORMAT)!r}, expected {format!r}"
    return data


def load(path: str | os.PathLike[str], format: str, stage: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The payload of `path` (a `format` file with the `required` keys), or an InputError naming the file, the
    problem and the stage that writes it, e.g. ``models/captioner.pt: file not found (run `dvc repro ...`)``."""
    data = read(path, format)
    if isinstance(data, str):
        raise InputError(f"{path}: {data} (run `dvc repro {stage}`)")
    missing = [k for k in required if k not in data]
    if missing:
        raise InputError(f"{path}: not a complete {format} file (missing {', '.join(missing)}; rerun `dvc repro {stage}`)")
    return data


def load_weights(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """``module.load_state_dict(state_dict)``; weights that do not fit are an InputError naming `path`."""
    try:
        module.load_state_dict(state_dict)
    except (RuntimeError, KeyError, TypeError) as e:
        first = (str(e).splitlines() or [""])[0][:200]
        raise InputError(f"{path}: weights do not fit the {type(module).__name__} ({first})") from None
