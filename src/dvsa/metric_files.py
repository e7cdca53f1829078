"""Two views of a stage's results: the few figures compared across experiments and the whole record.

``metrics/<stage>.json`` is a DVC metric and holds only what a user compares across experiments (ranking,
grounding, caption scores, vocabulary size), so that `dvc exp show` and `dvc metrics diff` stay readable.
``metrics/details/<stage>.json`` holds the whole record (counts, chance levels, histograms, settings); it is a
plain DVC output kept in git (``cache: false``), not a metric. Timings are printed, never written to either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dvsa.io import write_json


def pick(record: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The nested subset of `record` named by dotted `keys` (e.g. "annotation.r1"); absent keys are left out."""
    out: dict[str, Any] = {}
    for key in keys:
        node: Any = record
        parts = key.split(".")
        for part in parts:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            target = out
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = node
    return out


def write_metrics(
    summary_path: str | os.PathLike[str],
    details_path: str | os.PathLike[str],
    record: Mapping[str, Any],
    keys: Sequence[str],
) -> None:
    """Write the whole `record` to `details_path` and its `keys` to `summary_path` (the DVC metric), atomically."""
    write_json(details_path, dict(record))
    write_json(summary_path, pick(record, keys))
