from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from dvsa.data.config import DatasetParams, PreprocessParams
from dvsa.errors import ParamsError
from dvsa.params import load_params
from tests.conftest import REPO


@dataclass
class Inner:
    rate: float = 0.5


@dataclass
class Section:
    size: int = field(default=3, metadata={"min": 1})
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    name: str | None = None
    inner: Inner = field(default_factory=Inner)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(text)
    return p


def test_defaults_and_values(tmp_path: Path) -> None:
    p = write(tmp_path, "captioner:\n  size: 7\n  inner:\n    rate: 2\n")
    s = load_params(Section, "captioner", p)
    assert s == Section(size=7, inner=Inner(rate=2.0))
    assert isinstance(s.inner.rate, float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("captioner:\n  sise: 7\n", "captioner.sise: unknown key"),
        ("captioner:\n  size: big\n", "captioner.size: expected an integer, got 'big'"),
        ("captioner:\n  size: -2\n", "captioner.size: must be >= 1, got -2"),
        ("captioner:\n  size: 2.5\n", "captioner.size: expected an integer"),
        ("captioner:\n  mode: c\n", "captioner.mode: expected one of 'a', 'b'"),
        ("captioner:\n  flag: 1\n", "captioner.flag: expected true or false"),
        ("captioner:\n  inner:\n    rate: x\n", "captioner.inner.rate: expected a number"),
        ("captioner:\n  inner:\n    speed: 1\n", "captioner.inner.speed: unknown key"),
        ("captionr:\n  size: 1\n", "captionr: unknown section"),
        ("evaluate:\n  captions: {}\n", "evaluate.captions: unknown section"),
        ("captioner: [1, 2]\n", "captioner: expected a mapping"),
        ("captioner: {size: [\n", "not valid YAML"),
    ],
)
def test_bad_params_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ParamsError) as e:
        load_params(Section, "captioner", p)
    assert message in str(e.value)
    assert str(p) in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="file not found"):
        load_params(Section, "captioner", tmp_path / "nope.yaml")


def test_repository_params_load() -> None:
    d = load_params(DatasetParams, "dataset", REPO / "params.yaml")
    assert d.source == "shapes"
    assert load_params(PreprocessParams, "preprocess", REPO / "params.yaml").word_count_threshold == 5
