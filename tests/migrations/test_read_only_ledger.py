"""A read-only SQLite ledger: a reader without write permission, a copy on read-only media."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from worker.errors import ConfigError
from worker.ledger import migrate
from worker.ledger.store import Ledger


def make_ledger(path: Path) -> None:
    led = Ledger(f"sqlite:///{path}")
    migrate.upgrade(led.engine)
    led.lane_heartbeat("kkt1", state="running")
    led.dispose()


@contextlib.contextmanager
def read_only_media(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """*directory* seen through a read-only bind mount (as a backup on read-only media); where this
    machine does not allow mounting, the ledger is told its directory is not writable instead."""
    mnt = directory.parent / "media"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(directory), str(mnt)], capture_output=True).returncode == 0 \
        and subprocess.run(["mount", "-o", "remount,ro,bind", str(mnt)], capture_output=True).returncode == 0
    try:
        if not mounted:
            monkeypatch.setattr("worker.ledger.db.os.access", lambda *a, **k: False)
            mnt.rmdir()
            mnt = directory
        yield mnt
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=True)


def test_a_copy_on_read_only_media_opens_and_nothing_is_written(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    backup = tmp_path / "backup"
    backup.mkdir()
    make_ledger(tmp_path / "ledger.db")
    shutil.copy(tmp_path / "ledger.db", backup / "ledger.db")  # a backup copy: no -wal/-shm beside it
    with read_only_media(backup, monkeypatch) as media:
        before = sorted(os.listdir(media))
        reader = Ledger(f"sqlite:///{media / 'ledger.db'}", read_only=True)
        assert reader.status_details()["lanes"][0]["name"] == "kkt1"
        assert reader.counts() == {}
        reader.dispose()
        assert sorted(os.listdir(media)) == before


def test_a_read_command_never_creates_a_ledger(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never create"):
        Ledger(f"sqlite:///{tmp_path / 'nope' / 'ledger.db'}", read_only=True)
    assert not (tmp_path / "nope").exists()
