"""dvsa.hashing.code_digest: the code a trainer runs, read from its imports, so that a code change retrains."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from dvsa.hashing import code_digest


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package `toypkg`: trainer imports loss (a function from it) and model (a module); other is unrelated."""
    root = tmp_path / "toypkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "trainer.py").write_text("from toypkg.loss import ranking\nfrom toypkg import model\n")
    (root / "loss.py").write_text("from toypkg.deep import margin\n\ndef ranking():\n    return 1\n")
    (root / "deep.py").write_text("margin = 1.0\n")
    (root / "model.py").write_text("import os\n")
    (root / "other.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [m for m in sys.modules if m.split(".")[0] == "toypkg"]:
        del sys.modules[name]


def _edit(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)
    importlib.invalidate_caches()


@pytest.mark.parametrize("changed", ["trainer.py", "loss.py", "deep.py", "model.py", "__init__.py"])
def test_a_change_anywhere_in_the_import_closure_changes_the_digest(package: Path, changed: str) -> None:
    before = code_digest("toypkg.trainer")
    assert code_digest("toypkg.trainer") == before
    _edit(package / changed, "\n# changed\n")
    assert code_digest("toypkg.trainer") != before


def test_code_outside_the_closure_does_not_count(package: Path) -> None:
    before = code_digest("toypkg.trainer")
    _edit(package / "other.py", "y = 2\n")
    assert code_digest("toypkg.trainer") == before


def test_the_dvsa_trainers_cover_the_loop_and_their_losses() -> None:
    from dvsa.hashing import _closure

    for trainer, needed in [
        ("dvsa.align.train", {"dvsa.align.score", "dvsa.align.model", "dvsa.train.loop"}),
        ("dvsa.caption.train", {"dvsa.caption.model", "dvsa.train.loop", "dvsa.metrics.coco"}),
        ("dvsa.regions.train", {"dvsa.regions.shapes_net", "dvsa.train.loop"}),
    ]:
        assert needed <= set(_closure(trainer)), trainer
