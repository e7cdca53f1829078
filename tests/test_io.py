from __future__ import annotations

from pathlib import Path

import pytest

from dvsa.errors import InputError
from dvsa.io import atomic_path, read_json, write_json


def test_atomic_file_written_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.json"
    write_json(target, {"a": 1})
    assert read_json(target) == {"a": 1}
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert read_json(target) == {"a": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


def test_atomic_folder_replaces_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "folder"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "partial.txt").write_text("x")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]


def test_read_json_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad.json: not valid JSON \(line 1"):
        read_json(bad)
    with pytest.raises(InputError, match="missing.json: file not found"):
        read_json(tmp_path / "missing.json")


def test_temporaries_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".x.json.abc123.tmp").write_text("half")  # as a SIGKILL mid-write leaves it
    (tmp_path / ".folder.def456.tmp").mkdir()
    (tmp_path / ".other.json.abc.tmp").write_text("not ours")
    write_json(tmp_path / "x.json", [1])
    with atomic_path(tmp_path / "folder") as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.abc.tmp", "folder", "x.json"]


def test_save_torch_gives_the_same_bytes_for_the_same_contents(tmp_path: Path) -> None:
    import torch

    from dvsa.io import save_torch

    obj = {"w": torch.arange(6.0).view(2, 3), "step": 3}
    save_torch(obj, tmp_path / "a.pt")
    save_torch(obj, tmp_path / "b.pt")  # another temporary name, another final name
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], obj["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]
