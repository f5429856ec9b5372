"""Helpers for full-disk tests on the `tiny_disk` fixture (conftest.py): `fill` leaves N bytes free."""

from __future__ import annotations

import os
from pathlib import Path


def free_bytes(disk: Path) -> int:
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize


def fill(disk: Path, leave: int) -> None:
    """Fill the disk with a file named 'filler' until `leave` bytes (rounded to pages) stay free."""
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free_bytes(disk) - leave))
        f.flush()
        os.fsync(f.fileno())
    assert free_bytes(disk) <= leave + os.statvfs(disk).f_frsize


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)
