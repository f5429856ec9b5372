"""3D view speed: frames per second of `Plot3D.show_frame` + a grab, with and without training.

    xvfb-run -a -s "-screen 0 1280x1024x24" python benchmarks/gl_3d.py [--seconds 3] [--particles 10000]

GL needs a real X display (Xvfb + Mesa llvmpipe here; the offscreen platform has no OpenGL).
Every row draws `--particles` particles over the 5,000-point helix in a 640x480 view and
forces a render per frame with `grab_image()` (the GL framebuffer), so the numbers are what a
visible window could show at most:

1. draw: pre-built frames (particles only), the engine worker idle;
2. draw + field: every frame also brings a new 10x10x10 arrow field (the 3D field's size);
3. draw while training: row 1 while the worker trains (NCSN, 3x128 MLP, batch 512, 1 torch thread);
4. live: the app's loop — the worker trains and plays the particles (annealed Langevin, 5 steps
   per frame, the 3D field each frame) and the GUI draws every frame it emits, then acknowledges it;
5. live, particles only: row 4 without training.

Appends the table to benchmarks/RESULTS.md with the machine and the GL renderer.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QObject, Slot  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.views.plot3d import Plot3D, opengl_available, share_gl_contexts  # noqa: E402

SIZE = (640, 480)
WARMUP_FRAMES = 5  # VBO allocation and shader compilation happen on the first draws


def _frame(particles: np.ndarray, field=None):  # noqa: ANN001, ANN202
    from sgm_core.live import Frame

    return Frame(step=0, losses=np.zeros(0), loss_steps=np.zeros(0, int), particles=particles, trails=None,
                 sampler_step=0, sampler_sigma=1.0, sampler_done=False, field=field, true_field=None, field_sigma=0.1,
                 heatmap=None, error_map=None, heatmap_bounds=None, score_error=None, reference_kind="empirical",
                 steps_per_second=0.0, elapsed=0.0, eta=None, device="cpu", dim=3)


def draw_rate(app: QApplication, plot: Plot3D, frames: list, seconds: float) -> float:
    """show_frame + grab_image per frame, cycling through `frames`; events are processed so a
    running worker's frames are acknowledged (they are not drawn here)."""
    for f in frames[:WARMUP_FRAMES]:
        plot.show_frame(f)
        plot.grab_image()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        plot.show_frame(frames[n % len(frames)])
        plot.grab_image()
        app.processEvents()
        n += 1
    return n / (time.perf_counter() - t0)


class LiveLoop(QObject):
    """The window's loop in miniature: draw each frame the worker emits, then acknowledge it.
    A QObject living in the GUI thread, so the worker's signal reaches it queued, as the window."""

    def __init__(self, worker, plot: Plot3D, draw: bool = True) -> None:  # noqa: ANN001
        super().__init__()
        self.worker, self.plot, self.draw = worker, plot, draw
        self.drawn = 0
        self.last = None
        worker.progressed.connect(self.on_frame)

    @Slot(object)
    def on_frame(self, frame) -> None:  # noqa: ANN001
        if self.draw:
            self.plot.show_frame(frame)
            self.plot.grab_image()
            self.drawn += 1
        self.last = frame
        self.worker.frame_consumed()


def run_for(app: QApplication, seconds: float) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        app.processEvents()
        time.sleep(0.001)


def gl_renderer(plot: Plot3D) -> str:
    from OpenGL import GL

    view = plot._view
    view.makeCurrent()
    try:
        return f"{GL.glGetString(GL.GL_RENDERER).decode()} (OpenGL {GL.glGetString(GL.GL_VERSION).decode()})"
    finally:
        view.doneCurrent()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--particles", type=int, default=10_000)
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()

    share_gl_contexts()
    app = QApplication(sys.argv[:1])
    if not opengl_available():
        sys.exit(f"gl_3d: no OpenGL on the Qt platform {QGuiApplication.platformName()!r}; run under xvfb-run")

    import torch

    from app.workers import EngineSpec, EngineWorker, warm_up_torch
    from sgm_core.config import RunConfig, SamplerConfig
    from sgm_core.datasets import make_preset
    from sgm_core.live import FieldGrid, FieldView, default_bounds

    warm_up_torch()
    data = make_preset("helix", 5000)
    plot = Plot3D()
    plot.resize(*SIZE)
    plot.show()
    for _ in range(10):
        app.processEvents()
    plot.set_points(data.points)
    plot.fit_to(data.points)
    renderer = gl_renderer(plot)

    rng = np.random.default_rng(0)
    n = args.particles
    particles = [rng.normal(scale=1.5, size=(n, 3)).astype(np.float32) for _ in range(8)]
    bounds = default_bounds(data.points)
    axes = [np.linspace(lo, hi, 10, dtype=np.float32) for lo, hi in bounds]
    pos = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    fields = [FieldGrid(pos, (-pos + rng.normal(size=pos.shape)).astype(np.float32), (10, 10, 10)) for _ in range(8)]
    plain = [_frame(p) for p in particles]
    with_field = [_frame(p, f) for p, f in zip(particles, fields, strict=True)]

    cfg = RunConfig()
    cfg = replace(cfg, train=replace(cfg.train, steps=10_000_000))
    spec = EngineSpec(data, cfg, SamplerConfig(name="annealed"), n)
    view = FieldView(bounds=bounds, resolution=32, sigma=0.1, truth=False)
    rows: list[tuple[str, float, float | None]] = []

    worker = EngineWorker()
    worker.start()
    try:
        rows.append(("draw (worker idle)", draw_rate(app, plot, plain, args.seconds), None))
        rows.append(("draw + new 3D field each frame", draw_rate(app, plot, with_field, args.seconds), None))

        # 3. the same drawing while the worker trains; steps/s from its acknowledged frames
        loop = LiveLoop(worker, plot, draw=False)
        worker.set_view(view)
        worker.set_engine(spec)
        worker.train()
        run_for(app, 1.0)  # past the first chunks' timing
        s0, t0 = loop.last.step if loop.last else 0, time.perf_counter()
        fps = draw_rate(app, plot, plain, args.seconds)
        rate = ((loop.last.step if loop.last else 0) - s0) / (time.perf_counter() - t0)
        rows.append(("draw while the worker trains", fps, rate))
        worker.progressed.disconnect(loop.on_frame)

        # 4. live: train + play, every emitted frame drawn
        live = LiveLoop(worker, plot, draw=True)
        worker.play()
        run_for(app, 1.0)
        d0, s0, t0 = live.drawn, live.last.step, time.perf_counter()
        run_for(app, args.seconds)
        dt = time.perf_counter() - t0
        rows.append(("live: train + play, draw every frame", (live.drawn - d0) / dt, (live.last.step - s0) / dt))

        # 5. live, particles only
        worker.stop_training()
        run_for(app, 0.5)
        d0, t0 = live.drawn, time.perf_counter()
        run_for(app, args.seconds)
        rows.append(("live: play only, draw every frame", (live.drawn - d0) / (time.perf_counter() - t0), None))
        worker.progressed.disconnect(live.on_frame)
    finally:
        worker.shutdown(timeout=2.0)

    cpu = platform.processor() or platform.machine()
    lines = [f"\n## 3D view fps — {date.today()} — {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"Qt platform {QGuiApplication.platformName()}, {renderer}\n",
             f"{n:,} particles over the 5,000-point helix, {SIZE[0]}x{SIZE[1]}, show_frame + grab_image per frame; "
             "training: NCSN, 3x128 MLP, batch 512, 1 torch thread in the engine worker.\n",
             "| scenario | frames/s | training steps/s |", "|---|---|---|"]
    for name, fps, steps in rows:
        lines.append(f"| {name} | {fps:.0f} | {'' if steps is None else f'{steps:.0f}'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    if not out.exists():
        out.write_text("# Benchmark results\n\nAppended by the scripts in this folder; newest last.\n")
    with out.open("a") as f:
        f.write(text)
    plot.close()


if __name__ == "__main__":
    main()
