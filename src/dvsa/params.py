"""Typed params: each params.yaml section is loaded into a dataclass.

Unknown keys, wrong types and out-of-range values are rejected with a ParamsError that names the key,
e.g. ``params.yaml: captioner.rnn_size: expected int, got 'big'``.

A dataclass field may carry bounds in its metadata: ``field(default=8, metadata={"min": 1})``
(``min``/``max`` inclusive, ``gt`` exclusive).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from dvsa.errors import ParamsError

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")

# The top-level sections of params.yaml and, for nested ones, their subsections.
SECTIONS: dict[str, frozenset[str]] = {
    "dataset": frozenset(),
    "preprocess": frozenset(),
    "regions": frozenset(),
    "alignment": frozenset(),
    "captioner": frozenset(),
    "region_snippets": frozenset(),
    "region_captioner": frozenset(),
    "evaluate": frozenset({"alignment", "captioning", "region_captioning"}),
    "compute": frozenset(),
}


def read_params_file(path: str | os.PathLike[str] = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read params.yaml and check its top-level sections."""
    p = Path(path)
    if not p.is_file():
        raise ParamsError(f"{p}: file not found")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ParamsError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{p}: expected a mapping of sections, got {type(raw).__name__}")
    for key, value in raw.items():
        if key not in SECTIONS:
            raise ParamsError(f"{p}: {key}: unknown section (known: {', '.join(SECTIONS)})")
        subs = SECTIONS[key]
        if subs and isinstance(value, dict):
            for sub in value:
                if sub not in subs:
                    raise ParamsError(f"{p}: {key}.{sub}: unknown section (known: {', '.join(sorted(subs))})")
    return raw


def load_params(cls: type[T], section: str, path: str | os.PathLike[str] = DEFAULT_PARAMS) -> T:
    """Load the (possibly dotted, e.g. ``evaluate.alignment``) `section` of `path` into `cls`."""
    node: Any = read_params_file(path)
    for part in section.split("."):
        node = (node or {}).get(part, {}) if isinstance(node, dict) else node
    return from_mapping(cls, node, f"{path}: {section}")


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping, checking keys, types and bounds; `where` prefixes errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise ParamsError(f"{where}.{key}: unknown key (known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            continue
        key = f"{where}.{name}"
        value = _coerce(data[name], hints[name], key)
        _check_bounds(value, f.metadata, key)
        values[name] = value
    return cls(**values)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError(errors[0] if len(errors) == 1 else f"{key}: expected {_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{key}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, key)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"params type {tp!r} of {key} is not supported")


def _check_bounds(value: Any, meta: Any, key: str) -> None:
    if value is None or isinstance(value, (str, list, bool)):
        return
    if "min" in meta and value < meta["min"]:
        raise ParamsError(f"{key}: must be >= {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise ParamsError(f"{key}: must be <= {meta['max']}, got {value!r}")
    if "gt" in meta and value <= meta["gt"]:
        raise ParamsError(f"{key}: must be > {meta['gt']}, got {value!r}")


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))
