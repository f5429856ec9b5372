"""Media writers on a real full disk (a small tmpfs): `sgm render` to GIF/MP4, `save_points` to
NPY/CSV and `save_png` over an existing good file. Each failure is exit 2 (CLI) or one DataError
sentence naming the disk's reason, the old file survives byte for byte, and no temp file is left.

The disk is filled to 0 bytes free (the first write fails) or to half the old file's size (the new
file starts, then runs out part-way: the case where an unchecked writer published a cut file).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from full_disk import fill, temp_files

from sgm_core import cli
from sgm_core.errors import DataError
from sgm_core.io import load_points, save_points
from sgm_core.render import render_run
from sgm_core.video import save_png

ROOT = Path(__file__).resolve().parents[1]
ENOSPC = os.strerror(28)  # "No space left on device"
RENDER = {"frames": 6, "size": (96, 96), "n": 300, "steps": 2}  # ~10-40 KB files, well under the disk
CLI_TIMEOUT_S = 180  # one render in a fresh interpreter: ~3 s quiet, far more on a loaded 2-core box


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny trained run (20 steps), made once for the module on a normal disk."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert cli.main(["train", "8gaussians", "--out", str(out), "--steps", "20"]) == 0
    return out


def leave_for(old: bytes, how: str) -> int:
    return 0 if how == "empty" else len(old) // 2


def cli_render(run: Path, out: Path, seed: int) -> subprocess.CompletedProcess:
    w, h = RENDER["size"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "sgm_core.cli", "render", str(run), "--out", str(out), "--frames", str(RENDER["frames"]),
         "--size", f"{w}x{h}", "--n", str(RENDER["n"]), "--steps", str(RENDER["steps"]), "--seed", str(seed)],
        capture_output=True, text=True, env=env, timeout=CLI_TIMEOUT_S)


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_cli_render_over_a_good_file_on_a_full_disk(tiny_disk, run_dir, suffix):  # noqa: F811
    """The new file runs out of space half-way: exit 2, one stderr line, the old file intact."""
    out = tiny_disk / f"anim{suffix}"
    render_run(run_dir, out, seed=0, **RENDER)  # the good file that must survive
    old = out.read_bytes()
    fill(tiny_disk, leave=leave_for(old, "half"))
    done = cli_render(run_dir, out, seed=1)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and done.stderr.endswith("\n"), done.stderr
    assert lines[0].startswith(f"sgm: error: cannot write {str(out)!r}: ") and ENOSPC in lines[0]
    assert "wrote" not in done.stdout + done.stderr
    assert out.read_bytes() == old
    assert temp_files(tiny_disk) == [] and sorted(p.name for p in tiny_disk.iterdir()) == [out.name, "filler"]


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_render_run_on_a_disk_with_no_space_left(tiny_disk, run_dir, suffix):  # noqa: F811
    out = tiny_disk / f"anim{suffix}"
    render_run(run_dir, out, seed=0, **RENDER)
    old = out.read_bytes()
    fill(tiny_disk, leave=0)
    with pytest.raises(DataError) as info:
        render_run(run_dir, out, seed=1, **RENDER)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"cannot write {str(out)!r}") and ENOSPC in message
    assert out.read_bytes() == old and temp_files(tiny_disk) == []


@pytest.mark.parametrize("how", ["empty", "half"])
@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_save_points_on_a_full_disk_keeps_the_old_file(tiny_disk, suffix, how):  # noqa: F811
    rng = np.random.default_rng(0)
    path = tiny_disk / f"points{suffix}"
    save_points(path, rng.standard_normal((2000, 3)))  # 24 KB (npy) / ~80 KB (csv)
    old = path.read_bytes()
    fill(tiny_disk, leave=leave_for(old, how))
    with pytest.raises(DataError) as info:
        save_points(path, rng.standard_normal((2000, 3)))
    assert "\n" not in str(info.value) and ENOSPC in str(info.value)
    assert path.read_bytes() == old and temp_files(tiny_disk) == []
    assert load_points(path).shape == (2000, 3)  # still the good old file


@pytest.mark.parametrize("how", ["empty", "half"])
def test_save_png_on_a_full_disk_keeps_the_old_file(tiny_disk, how):  # noqa: F811
    rng = np.random.default_rng(0)
    path = tiny_disk / "frame.png"
    save_png(path, rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))  # noise: ~37 KB, no compression
    old = path.read_bytes()
    fill(tiny_disk, leave=leave_for(old, how))
    with pytest.raises(DataError) as info:
        save_png(path, rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    assert "\n" not in str(info.value) and ENOSPC in str(info.value)
    assert path.read_bytes() == old and temp_files(tiny_disk) == []
