"""Resume files (docs/design.md, "Resume policy"): the loop's state and the trainer's weights and optimizer
moments, written atomically at every validation and on SIGINT / SIGTERM, removed when training ends.

A resume file is used only when its key matches the run's: the format tag, the params, a fingerprint of the
input data AND the digest of the code that trains (dvsa.hashing.code_digest). Any other file (other params,
data or code, unreadable, a missing key, weights that do not fit) is ignored with one logged line and the run
trains from scratch. Nothing random is saved: every random draw of iteration i is seeded by (seed, i)
(dvsa.train.loop), so a resumed run continues with the same numbers whatever the number of processes.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dvsa.checkpoint import read, save


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class ResumeKey:
    """What a resume file must have been made with to be used."""

    format: str  # e.g. "dvsa.alignment.resume/3"; change it when the stored layout changes
    params: dict[str, Any]  # the params section that configures the run (its to_dict())
    inputs: str  # fingerprint of the input data, e.g. dvsa.features.fingerprint.data_fingerprint
    code: str = ""  # dvsa.hashing.code_digest of the trainer's module (the loop fills it in)


def save_resume(path: str | os.PathLike[str], key: ResumeKey, state: Any, objects: Mapping[str, Stateful]) -> None:
    """Write `state` (a dataclass) and the objects' state dicts to `path` under `key`."""
    save(
        path,
        key.format,
        {
            "params": key.params,
            "inputs": key.inputs,
            "code": key.code,
            "state": {f.name: getattr(state, f.name) for f in dataclasses.fields(state)},
            "objects": {name: obj.state_dict() for name, obj in objects.items()},
        },
    )


def load_resume(
    path: str | os.PathLike[str],
    key: ResumeKey,
    state: Any,
    objects: Mapping[str, Stateful],
    log: Callable[[str], None] = print,
) -> bool:
    """Restore `path` into `state` and `objects` if it matches `key`; True when it did.

    A missing file returns False silently; any other reason not to resume logs one line
    ("ignoring <path>: <why>; training from scratch") and changes nothing.
    """
    p = Path(path)
    if not p.is_file():
        return False
    why = _why_not(p, key, state, objects)
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
    return True


def _why_not(p: Path, key: ResumeKey, state: Any, objects: Mapping[str, Stateful]) -> str | dict[str, Any]:
    """The reason not to resume from `p`, or its contents when every key it needs is there."""
    ckpt = read(p, key.format)
    if isinstance(ckpt, str):
        return ckpt
    for what in ("params", "inputs", "code"):
        if ckpt.get(what) != getattr(key, what):
            return {"params": "made with other params", "inputs": "made from other input data",
                    "code": "made by other code"}[what]
    needed = [("state", f.name) for f in dataclasses.fields(state)] + [("objects", name) for name in objects]
    for section, name in needed:
        if not isinstance(ckpt.get(section), dict) or name not in ckpt[section]:
            return f"no {section}.{name}"
    return ckpt
