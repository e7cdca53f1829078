"""A team's DVC remote (docs/remote.md): `dvc push --run-cache` from one clone to a real SSH server, `dvc pull
--run-cache` into a second clean clone, where `dvc repro` then runs no stage. The server is OpenSSH's sshd, started
by the test on a free loopback port with a temporary host key and user key, and stopped by it."""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.project import dvc

SSHD = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/usr/local/sbin")
SSH_KEYGEN = shutil.which("ssh-keygen")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(SSHD is None or SSH_KEYGEN is None,
                       reason="no sshd or ssh-keygen (Debian: apt-get install openssh-server)"),
    pytest.mark.skipif(importlib.util.find_spec("dvc_ssh") is None,
                       reason="no dvc-ssh (pip install -r requirements.txt)"),
]


@dataclass(frozen=True)
class Server:
    """An sshd on 127.0.0.1:`port` that lets `user` in with the private key `key`."""

    port: int
    user: str
    key: Path

    def url(self, path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    """A new passphrase-less ed25519 key pair at `path` (+ .pub); returns the public key's `type base64`."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited with {proc.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"sshd not listening on port {port} after {timeout} s:\n{log.read_text()}")


@pytest.fixture
def sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """sshd -D on a free loopback port (as the current user, who alone may log in, by key), and a HOME whose
    ~/.ssh/known_hosts trusts its host key, as a teammate's after a first `ssh` to the server."""
    etc = tmp_path / "sshd"
    etc.mkdir()
    host_key = _keygen(etc / "host_key")
    (etc / "authorized_keys").write_text(_keygen(etc / "user_key") + "\n")
    port = _free_port()
    (etc / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {etc / 'host_key'}\nPidFile {etc / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {etc / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n")
    if os.geteuid() == 0:  # root's sshd needs its privilege-separation folder, made by Debian's service at boot
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    monkeypatch.setenv("HOME", str(home))
    log = etc / "sshd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(etc / "sshd_config")], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        _wait_listening(proc, port, log)
        yield Server(port, getpass.getuser(), etc / "user_key")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _commit_all(root: Path) -> None:
    git = ["git", "-c", "user.name=dvsa-test", "-c", "user.email=test@dvsa.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "outputs and the team's remote"], cwd=root, check=True)


def _run_cache(root: Path) -> set[str]:
    runs = root / ".dvc" / "cache" / "runs"
    return {str(p.relative_to(runs)) for p in runs.rglob("*") if p.is_file()}


def test_a_clean_clone_pulls_the_push_and_reruns_nothing(tiny_pipeline: Path, sshd: Server, tmp_path: Path) -> None:
    first = tmp_path / "first"
    shutil.copytree(tiny_pipeline, first, symlinks=True)
    dvc(first, "remote", "add", "-d", "team", sshd.url(tmp_path / "store"))
    dvc(first, "remote", "modify", "--local", "team", "keyfile", str(sshd.key))
    _commit_all(first)  # dvc.lock, metrics/, logs/ and the remote go through git; .dvc/config.local does not
    dvc(first, "push", "--run-cache")
    assert _run_cache(first)

    second = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(first), str(second)], check=True)
    assert not (second / "models").exists() and not (second / ".dvc" / "cache").exists()
    dvc(second, "remote", "modify", "--local", "team", "keyfile", str(sshd.key))
    dvc(second, "pull", "--run-cache")
    assert _run_cache(second) == _run_cache(first)
    assert "Running stage" not in dvc(second, "repro").stdout
    assert json.loads(dvc(second, "status", "--json").stdout or "{}") == {}
