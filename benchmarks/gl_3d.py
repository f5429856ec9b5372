"""3D view speed: frames per second of `Plot3D.show_frame` + a grab, with and without training.

    xvfb-run -a -s "-screen 0 1280x1024x24" python benchmarks/gl_3d.py [--seconds 3] [--particles 10000]

GL needs a real X display (Xvfb + Mesa llvmpipe here; the offscreen platform has no OpenGL).
Every row draws `--particles` particles over the 5,000-point helix in a 640x480 view. Rows 1-3
force a render per frame with `grab_image()` (the GL framebuffer): what a window could show at
most. Rows 4-6 are the window's own loop, where the engine worker sets the pace:

1. draw: pre-built frames (particles only), the engine worker idle;
2. draw + field: every frame also brings a new 10x10x10 arrow field (the 3D field's size);
3. draw while training: row 1 while the worker trains (NCSN, 3x128 MLP, batch 512, 1 torch thread);
4. live: the app's loop — the worker trains and plays the particles (annealed Langevin, 5 steps
   per frame, the 3D field each frame) and the GUI shows and repaints every frame it emits, then
   acknowledges it (newest frame wins);
5. live, particles only: row 4 without training;
6. live with the window's default 2,000 particles, training and playing.

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
DEFAULT_PARTICLES = 2000  # the window's default particle count (app.session.ParticleOptions)


from results import append_results  # noqa: E402 - benchmarks/ is on sys.path when run as a script


def _frame(particles: np.ndarray, field=None):  # noqa: ANN001, ANN202
    from sgm_core.live import Frame

    return Frame(step=0, losses=np.zeros(0), loss_steps=np.zeros(0, int), particles=particles, trails=None,
                 sampler_step=0, sampler_sigma=1.0, sampler_done=False, field=field, true_field=None, field_sigma=0.1,
                 heatmap=None, error_map=None, heatmap_bounds=None, score_error=None, reference_kind="empirical",
                 steps_per_second=0.0, elapsed=0.0, eta=None, device="cpu", dim=3)


def draw_rate(plot: Plot3D, frames: list, seconds: float) -> float:
    """show_frame + grab_image per frame, cycling through `frames`. No event processing in the
    loop: the grab is the only render (an event loop would also repaint the widget on screen)."""
    for f in frames[:WARMUP_FRAMES]:
        plot.show_frame(f)
        plot.grab_image()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        plot.show_frame(frames[n % len(frames)])
        plot.grab_image()
        n += 1
    return n / (time.perf_counter() - t0)


def trainer_step(worker) -> int:  # noqa: ANN001
    """The engine's step, asked in the worker thread (list.append is thread-safe)."""
    box: list[int] = []
    worker.call(lambda eng: box.append(eng.trainer.step))
    while not box:
        time.sleep(0.001)
    return box[0]


class LiveLoop(QObject):
    """The window's loop in miniature: show each frame the worker emits (the widget repaints on
    the event loop, as in the window: no grab), then acknowledge it. A QObject living in the GUI
    thread, so the worker's signal reaches it queued, as it reaches the window."""

    def __init__(self, worker, plot: Plot3D) -> None:  # noqa: ANN001
        super().__init__()
        self.worker, self.plot = worker, plot
        self.drawn = 0
        self.last = None
        worker.progressed.connect(self.on_frame)

    @Slot(object)
    def on_frame(self, frame) -> None:  # noqa: ANN001
        self.plot.show_frame(frame)
        self.plot.repaint()  # paint now (paintGL), not at the next idle moment
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

    load = os.getloadavg()  # other processes on a 2-core machine change every number here
    worker = EngineWorker()
    worker.start()
    try:
        rows.append(("show_frame + grab (worker idle)", draw_rate(plot, plain, args.seconds), None))
        rows.append(("show_frame + grab, new 3D field each frame", draw_rate(plot, with_field, args.seconds), None))

        # 3. the same drawing while the worker trains (it emits one frame, never acknowledged)
        worker.set_view(view)
        worker.set_engine(spec)
        worker.train()
        time.sleep(1.0)  # past the first chunks' timing
        s0, t0 = trainer_step(worker), time.perf_counter()
        fps = draw_rate(plot, plain, args.seconds)
        rate = (trainer_step(worker) - s0) / (time.perf_counter() - t0)
        rows.append(("show_frame + grab while the worker trains", fps, rate))
        s0, t0 = trainer_step(worker), time.perf_counter()
        time.sleep(args.seconds)
        rows.append(("(training alone, nothing drawn)", 0.0, (trainer_step(worker) - s0) / (time.perf_counter() - t0)))

        # 4. live: train + play, every emitted frame drawn
        live = LiveLoop(worker, plot)
        worker.frame_consumed()  # the frame emitted in row 3 was never acknowledged
        worker.play()
        run_for(app, 1.0)
        d0, s0, t0 = live.drawn, trainer_step(worker), time.perf_counter()
        run_for(app, args.seconds)
        rate = (trainer_step(worker) - s0) / (time.perf_counter() - t0)
        rows.append(("live: train + play, every frame drawn", (live.drawn - d0) / (time.perf_counter() - t0), rate))

        # 5. live, particles only
        worker.stop_training()
        run_for(app, 0.5)
        d0, t0 = live.drawn, time.perf_counter()
        run_for(app, args.seconds)
        rows.append(("live: play only, every frame drawn", (live.drawn - d0) / (time.perf_counter() - t0), None))

        # 6. live with the window's default 2,000 particles: sampling costs a fifth
        worker.reset_particles(DEFAULT_PARTICLES)
        worker.train()
        worker.play()
        run_for(app, 1.0)
        d0, s0, t0 = live.drawn, trainer_step(worker), time.perf_counter()
        run_for(app, args.seconds)
        rate = (trainer_step(worker) - s0) / (time.perf_counter() - t0)
        rows.append((f"live, {DEFAULT_PARTICLES:,} particles: train + play", (live.drawn - d0) / (time.perf_counter() - t0),
                     rate))
        worker.progressed.disconnect(live.on_frame)
    finally:
        worker.shutdown(timeout=2.0)

    cpu = platform.processor() or platform.machine()
    lines = [f"\n## 3D view fps — {date.today()} — {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"Qt platform {QGuiApplication.platformName()}, {renderer}, "
             f"load average before/after {load[0]:.1f}/{os.getloadavg()[0]:.1f}\n",
             f"{n:,} particles over the 5,000-point helix, {SIZE[0]}x{SIZE[1]}. First rows: show_frame + grab_image "
             "per frame; live rows: each frame the worker emits is shown and repainted, as in the window. Training: "
             "NCSN, 3x128 MLP, batch 512, 1 torch thread in the engine worker; particles: annealed Langevin, "
             "5 steps per frame.\n",
             "| scenario | frames/s | training steps/s |", "|---|---|---|"]
    for name, fps, steps in rows:
        lines.append(f"| {name} | {f'{fps:.0f}' if fps else '–'} | {'' if steps is None else f'{steps:.0f}'} |")
    text = "\n".join(lines) + "\n"
    append_results(text, args.out)
    plot.close()


if __name__ == "__main__":
    main()
