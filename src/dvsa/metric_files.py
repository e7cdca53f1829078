"""Two views of a stage's results: the headline figures compared across experiments and the whole record.

``metrics/<stage>.json`` is a DVC metric and holds only the headline figures a person compares across
experiments, under short names, so that `dvc exp show --only-changed`, `dvc metrics show` and
`dvc metrics diff` fit a 160-column terminal (DVC draws one column per metric; tests/test_metric_views.py
renders them). About ten in all, for the whole DAG: the region CNN's val accuracy, ranking R@1 / R@5 both
ways and grounding (Table 1), test CIDEr, BLEU-4 and the share of entirely true captions, the region
captioner's CIDEr (Table 3). ``metrics/details/<stage>.json`` holds the whole record under its own names
(every other figure: R@10, med r, chance levels, baselines, METEOR, counts, histograms, settings); it is a
plain DVC output kept in git (``cache: false``), not a metric. Timings are printed, never written to either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dvsa.io import write_json


def headline(record: Mapping[str, Any], figures: Mapping[str, str]) -> dict[str, Any]:
    """The figures of `record` named by `figures`: the name a metrics file shows (a dot nests, "i2t.r1") ->
    the dotted key of the figure in the record ("annotation.r1"). A key the record lacks is left out."""
    out: dict[str, Any] = {}
    for name, key in figures.items():
        node: Any = record
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            *parents, leaf = name.split(".")
            target = out
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = node
    return out


def write_metrics(
    summary_path: str | os.PathLike[str],
    details_path: str | os.PathLike[str],
    record: Mapping[str, Any],
    figures: Mapping[str, str],
) -> None:
    """Write the whole `record` to `details_path` and its headline `figures` (see `headline`) to
    `summary_path` (the DVC metric), each atomically."""
    write_details(details_path, record)
    write_json(summary_path, headline(record, figures))


def write_details(details_path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Write the whole `record` of a stage to `details_path` (a plain output), atomically; for a stage that
    has no headline figure (its figures describe the data, they are not results compared across experiments)."""
    write_json(details_path, dict(record))
