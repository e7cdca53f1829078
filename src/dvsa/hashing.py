"""Content fingerprints (sha256, hex): of arrays and strings, of files, of JSON-able records, and of the code a
module runs. The one home of hashing in dvsa: resume keys, the shard manifest and the weight-file references
all use these (docs/design.md, "Resume policy")."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 1 << 22  # bytes read at a time from a file


def digest(*parts: np.ndarray | bytes | str) -> str:
    """sha256 of arrays (dtype, shape and bytes), bytes and strings, in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.str}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(part if isinstance(part, bytes) else part.encode())
    return h.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's content, streamed (weight files are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def files_digest(paths: Iterable[str | os.PathLike[str]]) -> str:
    """sha256 over several files: each one's name and content digest, in sorted path order."""
    return digest(*(f"{Path(p).name}\0{file_digest(p)}\n" for p in sorted(map(Path, paths))))


def record_digest(record: Any) -> str:
    """sha256 of a JSON-able record (sorted keys; other values by str), e.g. the params that decide an output."""
    return digest(json.dumps(record, sort_keys=True, default=str))


def stat_digest(paths: Sequence[Path], ids: Sequence[int]) -> str:
    """sha256 over each file's path, id, size and modification time, not its bytes (COCO's images are 20 GB)."""
    lines = []
    for p, i in zip(paths, ids):
        st = os.stat(p) if p.is_file() else None
        lines.append(f"{p}\t{i}\t{st.st_size if st else -1}\t{st.st_mtime_ns if st else -1}\n")
    return digest(*lines)


def code_digest(*modules: str) -> str:
    """sha256 of the source of `modules` and of every dvsa module they import, directly or not.

    The closure is read from the import statements of the files (not from what happens to be loaded), so the
    same code gives the same digest in any process; a changed line anywhere in it gives another. This is what
    makes a resume file of old code unusable: a code change always retrains (docs/design.md).
    """
    files = _closure(*modules)
    return digest(*(f"{name}\0{file_digest(files[name])}\n" for name in sorted(files)))


def _closure(*modules: str) -> dict[str, Path]:
    """The source file of each module in the import closure of `modules` (within their packages)."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        seen[name] = Path(spec.origin)
        todo.extend(_imports(name, seen[name]))
    return seen


def _imports(module: str, path: Path) -> list[str]:
    """The modules of its own package that `module` (its file `path`) imports: `import dvsa.x`,
    `from dvsa.x import y` (y may itself be a module) and the packages above each."""
    root = module.split(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == root]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == root:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]
    parents = {".".join(m.split(".")[:k]) for m in found for k in range(1, m.count(".") + 1)}
    return [m for m in found + sorted(parents) if _is_module(m)]


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # `from dvsa.x import some_function` names no module
        return False
