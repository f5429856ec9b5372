"""Where the 2D view switches from scatter symbols to a splatted density (`SPLAT_ABOVE`).

    QT_QPA_PLATFORM=offscreen python benchmarks/particle_draw.py [--repeats 8]

For each particle count, the cost of one frame of particles in an 800x600 `Plot2D`: `show_frame`
(new positions) plus a paint (`grab`), once drawn as scatter symbols and once as the density
image. The switch belongs where the scatter's frame starts to cost more than a few ms over the
splat's; above it the scatter's cost grows with N, the splat's barely does.

A last row is the window's busiest frame: 10,000 particles with a new 32x32 learned field, the
true field and a 64x64 heatmap in every frame (it was a no-assert "test" in tests/test_plot2d.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication  # noqa: E402

from app.views.plot2d import Plot2D  # noqa: E402
from sgm_core.live import FieldGrid, Frame  # noqa: E402

COUNTS = (1_000, 3_000, 10_000, 20_000, 30_000, 50_000, 100_000, 300_000)


def particle_frame(xy: np.ndarray) -> Frame:
    return Frame(step=0, losses=np.zeros(0), loss_steps=np.zeros(0, int), particles=xy, trails=None,
                 sampler_step=0, sampler_sigma=1.0, sampler_done=False, field=None, true_field=None,
                 field_sigma=0.1, heatmap=None, error_map=None, heatmap_bounds=None, score_error=None,
                 reference_kind="analytic", steps_per_second=0.0, elapsed=0.0, eta=None, device="cpu", dim=2)


def arrow_grid(res: int, sign: float) -> FieldGrid:
    g = np.linspace(-2.0, 2.0, res, dtype=np.float32)
    pos = np.stack([a.ravel() for a in np.meshgrid(g, g)], axis=1)
    return FieldGrid(pos, (sign * pos).astype(np.float32), (res, res))


def full_frame(rng: np.random.Generator) -> Frame:
    """Particles, a new learned field, the true field and a heatmap: everything a frame can carry."""
    f = particle_frame(rng.normal(size=(10_000, 2)).astype(np.float32))
    return replace(f, field=arrow_grid(32, -1.0), true_field=arrow_grid(32, -0.5), heatmap=rng.random((64, 64)),
                   error_map=rng.random((64, 64)), heatmap_bounds=((-2, 2), (-2, 2)))


def frame_ms(plot: Plot2D, frames: list[Frame]) -> float:
    """Median ms of show_frame + grab over the frames (the first one warms up)."""
    plot.show_frame(frames[0])
    plot.grab()
    times = []
    for f in frames[1:]:
        t = time.perf_counter()
        plot.show_frame(f)
        plot.grab()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=8)
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    plot = Plot2D()
    plot.resize(800, 600)
    plot.show()
    app.processEvents()
    plot.fit_to(np.array([[-3.0, -3.0], [3.0, 3.0]]))
    rng = np.random.default_rng(0)
    print("| particles | scatter ms/frame | splat ms/frame |")
    print("|---:|---:|---:|")
    for n in COUNTS:
        frames = [particle_frame(rng.normal(size=(n, 2)).astype(np.float32)) for _ in range(args.repeats + 1)]
        plot.splat_above = 10**9
        scatter = frame_ms(plot, frames)
        plot.splat_above = 0
        splat = frame_ms(plot, frames)
        print(f"| {n:,} | {scatter:.1f} | {splat:.1f} |", flush=True)
    plot.splat_above = 10**9
    plot.set_layers(heatmap="density", true_field=True)
    full = frame_ms(plot, [full_frame(rng) for _ in range(args.repeats + 1)])
    print(f"\n10,000 particles + a new 32x32 field + true field + 64x64 heatmap, every frame: {full:.1f} ms/frame")


if __name__ == "__main__":
    main()
