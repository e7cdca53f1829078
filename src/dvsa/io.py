"""Atomic writes: every output is written to a temporary file beside it, then renamed into place.

A crash or an interrupt therefore never leaves a half-written file where DVC would take it as done.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvsa.errors import InputError

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, on error remove it.

    Works for files and for folders (the yielded path does not exist yet; create what you need).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove(final.parent.glob(f".{glob.escape(final.name)}.*.tmp"))  # left by a killed earlier run
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        _remove([tmp])
        raise


def save_torch(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save `obj` to `path` atomically; the same contents give the same bytes.

    torch.save names the archive inside the file after the file name it is given, and the temporary file's
    name is random: written through a file object, the archive is always named "archive", so an unchanged
    rerun leaves the file (and its hash in dvc.lock) unchanged.
    """
    import torch  # here: most users of dvsa.io need no torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def _remove(paths: Iterable[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    """Write `obj` as JSON to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=indent, ensure_ascii=False)
            f.write("\n")


def write_csv(path: str | os.PathLike[str], table: pd.DataFrame) -> None:
    """Write a pandas table as CSV (no index column) to `path` atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a missing or malformed file is an InputError naming it."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    try:
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text") from None
