"""`dvsa demo`'s bad arguments and a checkout without trained models: one line, exit 1, no server."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from dvsa.cli import main


@pytest.mark.parametrize("flag,value", [("--port", "0"), ("--concurrency", "0"), ("--max-upload-mb", "-1")])
def test_a_bad_value_is_one_line(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", flag, value]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {flag}: must be")


def test_a_checkout_without_models_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--root", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    if importlib.util.find_spec("gradio") is None:
        assert "dvsa demo needs gradio" in err
    else:
        assert f"{tmp_path / 'models/captioner.pt'}: file not found" in err
