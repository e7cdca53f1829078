from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dvsa.errors import DvsaError
from dvsa.live import open_live


def test_live_in_a_repository_without_commits_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=False, capture_output=True)
    (tmp_path / ".dvc").mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DvsaError, match=r"logs/x: dvclive cannot log here .*commit once"):
        open_live(tmp_path / "logs" / "x")


def test_live_logs_curves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_live(tmp_path / "logs") as live:
        live.log_metric("loss", 1.5)
        live.next_step()
    assert (tmp_path / "logs" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()[1].endswith("1.5")
