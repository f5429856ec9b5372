"""A real full disk for tests: a small tmpfs mounted for one test (root only: skipped cleanly where
`mount` is refused) and unmounted in the fixture's finalizer, and `fill` to leave N bytes free."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

DISK_KB = 1536  # big enough for a good small render or point file, small enough to fill in a blink


@pytest.fixture
def tiny_disk(tmp_path):
    """A fresh DISK_KB tmpfs under tmp_path, unmounted afterwards (lazily, if a file is still open)."""
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_KB}k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


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
