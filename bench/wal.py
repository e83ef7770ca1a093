"""What SQLite wrote into a WAL file, read from the file itself (bench.pool's idle figure).

A WAL file's size says little about what was written: after a checkpoint SQLite starts the log again from
its beginning and overwrites old frames without growing the file. Its frames do say it: the header carries
two salts that change at every restart, and every frame of the current log repeats them; a frame whose
"database size" field is not zero ends a transaction (https://www.sqlite.org/fileformat2.html#walformat).
:class:`WalCounter`, polled more often than the log restarts, adds up the frames appended between polls.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_HEADER = 32          # magic, version, page size, checkpoint sequence, salt-1, salt-2, checksum-1, checksum-2
_FRAME_HEADER = 24    # page number, database size after commit (0: not a commit), salt-1, salt-2, checksums


@dataclass(frozen=True)
class WalState:
    """The current log of a WAL file: its salts, its frames and how many of them end a transaction."""

    salts: bytes
    page_size: int
    frames: int
    commits: int


def read_wal(path: Path) -> WalState | None:
    """The frames of the current log in *path* (those carrying the header's salts, from the start, as
    SQLite's recovery reads them; checksums are not verified), None if there is no WAL header yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < _HEADER:
        return None
    page_size = struct.unpack(">I", data[8:12])[0]
    page_size = 65536 if page_size == 1 else page_size
    salts = data[16:24]
    frames = commits = 0
    pos = _HEADER
    while pos + _FRAME_HEADER + page_size <= len(data) and data[pos + 8:pos + 16] == salts:
        frames += 1
        commits += struct.unpack(">I", data[pos + 4:pos + 8])[0] != 0
        pos += _FRAME_HEADER + page_size
    return WalState(salts, page_size, frames, commits)


class WalCounter:
    """Frames and commits appended to a WAL file since the counter was made, polled with :meth:`poll`.

    A restart between two polls (new salts) counts the new log's frames from its start; frames appended
    to the old log after the last poll and before the restart are missed, and ``restarts`` says how
    often that could have happened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames = self.commits = self.restarts = 0
        self.page_size = 0
        self._last = read_wal(path)

    def poll(self) -> None:
        """Read the WAL again and add what was appended since the last poll."""
        now = read_wal(self.path)
        if now is None:
            return
        last, self._last = self._last, now
        self.page_size = now.page_size
        if last is not None and last.salts == now.salts:
            self.frames += now.frames - last.frames
            self.commits += now.commits - last.commits
        else:
            self.restarts += last is not None
            self.frames += now.frames
            self.commits += now.commits

    @property
    def bytes_written(self) -> int:
        """Frames appended × their size on disk (header + page)."""
        return self.frames * (_FRAME_HEADER + self.page_size)
