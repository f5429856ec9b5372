"""GUI fluidity: frames drawn per second and the worst event-loop stall, with 10k particles and a
32x32 field, with and without training running in the worker. Offscreen Qt by default.

The GUI thread's stall is measured by a 5 ms QTimer: the largest gap between its ticks beyond
its own period is the worst time the event loop could not run.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_fps.py [--seconds 10] [--particles 10000]
Appends its table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QElapsedTimer, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from results import append_results  # noqa: E402 - benchmarks/ is on sys.path when run as a script


def measure(window, app, seconds: float, training: bool) -> dict[str, float]:
    frames = []
    window.session.frame_arrived.connect(lambda _f: frames.append(time.perf_counter()))
    clock = QElapsedTimer()
    clock.start()
    gaps = []
    last = [clock.elapsed()]

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    if training:
        window.actions_["train"].trigger()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    if training:
        window.actions_["stop"].trigger()
    window.session.frame_arrived.disconnect()
    n = len([t for t in frames if t >= t0])
    worst = max(gaps) - 5 if gaps else float("nan")
    p99 = sorted(gaps)[int(0.99 * (len(gaps) - 1))] - 5 if gaps else float("nan")
    step = window.session.last_frame.step if window.session.last_frame else 0
    return {"fps": n / seconds, "worst_stall_ms": worst, "p99_stall_ms": p99, "steps": step}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--particles", type=int, default=10_000)
    parser.add_argument("--max-fps", type=float, default=None, help="the worker's frame clock (default: MAX_FPS)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()

    # The benchmark's window must not leave its settings (1e6 steps, 10k particles) in the user's.
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    scratch = tempfile.mkdtemp(prefix="sgm-bench-")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, scratch)
    app = QApplication.instance() or QApplication([])
    from app.main_window import MainWindow
    from app.workers import warm_up_torch

    warm_up_torch()
    window = MainWindow(data="8gaussians", device="CPU")
    if args.max_fps:
        window.worker.max_fps = args.max_fps
    window.resize(1280, 860)
    window.show()
    t0 = time.perf_counter()
    while len(window.session.points) == 0 and time.perf_counter() - t0 < 30:
        app.processEvents()
    cfg = window.session.run_config
    window.session.set_run_config(replace(cfg, train=replace(cfg.train, steps=10**6)))
    window.session.set_particles(n_particles=args.particles)
    for _ in range(50):
        app.processEvents()
        time.sleep(0.01)
    if not window.worker_state.playing:
        window.actions_["play"].trigger()
    rows = [("particles playing, idle training", measure(window, app, args.seconds, training=False)),
            ("particles playing + training", measure(window, app, args.seconds, training=True))]
    window.confirm_discard = lambda *_args: True  # no "unsaved changes?" prompt in a benchmark
    window.close()
    lines = [f"\n## GUI fluidity — {date.today()} — {platform.machine()}, {os.cpu_count()} cores, "
             f"platform {app.platformName()}, {args.particles} particles, 32x32 field, {args.seconds:.0f} s each, "
             f"frame clock {window.worker.max_fps:g} fps\n",
             "| scenario | frames/s | worst stall ms | p99 stall ms | training steps reached |", "|---|---|---|---|---|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['fps']:.1f} | {r['worst_stall_ms']:.0f} | {r['p99_stall_ms']:.0f} | {r['steps']} |")
    text = "\n".join(lines) + "\n"
    append_results(text, args.out)


if __name__ == "__main__":
    main()
