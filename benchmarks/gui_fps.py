"""GUI fluidity: frames drawn per second and the worst event-loop stall, with 10k particles and a
32x32 field, with and without training running in the engine (its own process unless
SGM_ENGINE=thread). Offscreen Qt by default.

The GUI thread's stall is measured by a 5 ms QTimer: the largest gap between its ticks beyond
its own period is the worst time the event loop could not run. In the same run, the same config
trains with no view (`train_steps_per_s_headless`, one torch thread), so the live/headless ratio
compares like with like on the machine's load of the moment.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_fps.py [--seconds 10] [--particles 10000] [--json OUT.json]
    xvfb-run -a -s "-screen 0 1600x1200x24" env QT_QPA_PLATFORM=xcb python benchmarks/gui_fps.py --data helix
        (3D: the window's GL view, which needs a real X display; Mesa llvmpipe under Xvfb)
Appends its table to benchmarks/RESULTS.md; --json also writes particle_fps, worst_stall_ms,
train_steps_per_s_live and train_steps_per_s_headless (the "playing + training" scenario), and
sampler_steps_per_s: whole-set sampler steps (a round-robin sweep over many frames counts once).
"""

from __future__ import annotations

import argparse
import json
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
    moved = []  # frames showing new particle positions (all of them, or a round-robin slice)
    sweeps = []  # (time, sampler step): whole-set sampler steps, however many frames each took

    def arrived(frame) -> None:  # noqa: ANN001
        now = time.perf_counter()
        frames.append(now)
        if frame.particles_moved > 0:
            moved.append(now)
        sweeps.append((now, frame.sampler_step))

    window.session.frame_arrived.connect(arrived)
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
    step0 = window.session.last_frame.step if window.session.last_frame else 0
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
    inside = [(t, s) for t, s in sweeps if t >= t0]
    # a chain restarted under the newer model counts from 0 again: sum the forward moves only
    swept = sum(max(0, b[1] - a[1]) for a, b in zip(inside, inside[1:], strict=False))
    return {"fps": n / seconds, "particle_fps": len([t for t in moved if t >= t0]) / seconds, "worst_stall_ms": worst,
            "p99_stall_ms": p99, "steps": step, "steps_per_s": (step - step0) / seconds,
            "sampler_steps_per_s": swept / seconds}


def headless_steps_per_s(window, seconds: float) -> float:
    """The window's run config trained with no view, one torch thread, for `seconds`."""
    import torch

    from sgm_core.live import LiveEngine

    torch.set_num_threads(1)
    engine = LiveEngine(window.session.dataset(), window.session.run_config, n_particles=1)
    engine.train(20)  # warm-up
    t0, s0 = time.perf_counter(), engine.trainer.step
    while time.perf_counter() - t0 < seconds:
        engine.train(50)
    return (engine.trainer.step - s0) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--particles", type=int, default=10_000)
    parser.add_argument("--data", default="8gaussians", help="a preset; a 3D one (helix) measures the GL view")
    parser.add_argument("--max-fps", type=float, default=None, help="the worker's frame clock (default: MAX_FPS)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    parser.add_argument("--json", default=None, help="also write the headline numbers to this JSON file")
    args = parser.parse_args()

    # The benchmark's window must not leave its settings (1e6 steps, 10k particles) in the user's.
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    scratch = tempfile.mkdtemp(prefix="sgm-bench-")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, scratch)
    app = QApplication.instance() or QApplication([])
    from app.main_window import MainWindow

    started = time.perf_counter()
    window = MainWindow(data=args.data, device=None)  # the engine process warms torch up itself
    if args.max_fps:
        window.worker.max_fps = args.max_fps
    window.resize(1280, 860)
    window.show()
    t0 = time.perf_counter()
    while len(window.session.points) == 0 and time.perf_counter() - t0 < 120:
        app.processEvents()
    ready_s = time.perf_counter() - started
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
    engine_kind = type(window.worker).__name__
    window.close()
    headless = headless_steps_per_s(window, args.seconds)
    live = rows[1][1]
    summary = {"data": args.data, "particles": args.particles, "seconds": args.seconds, "engine": engine_kind,
               "particle_fps": live["particle_fps"], "worst_stall_ms": live["worst_stall_ms"],
               "p99_stall_ms": live["p99_stall_ms"], "sampler_steps_per_s": live["sampler_steps_per_s"],
               "train_steps_per_s_live": live["steps_per_s"],
               "train_steps_per_s_headless": headless, "live_over_headless": live["steps_per_s"] / max(headless, 1e-9),
               "idle_training_particle_fps": rows[0][1]["particle_fps"], "data_shown_after_s": ready_s,
               "load_average": os.getloadavg()}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    lines = [f"\n## GUI fluidity — {date.today()} — {platform.machine()}, {os.cpu_count()} cores, "
             f"platform {app.platformName()}, {args.data}, {args.particles} particles, "
             f"{'10x10x10' if window.session.points.shape[1] == 3 else '32x32'} field, {args.seconds:.0f} s each, "
             f"frame clock {window.worker.max_fps:g} fps, engine {engine_kind}, load {os.getloadavg()[0]:.1f}; "
             f"headless {headless:.0f} steps/s, live/headless {summary['live_over_headless']:.2f}\n",
             "| scenario | frames/s | particle updates/s | sampler steps/s | worst stall ms | p99 stall ms "
             "| training steps reached | steps/s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['fps']:.1f} | {r['particle_fps']:.1f} | {r['sampler_steps_per_s']:.1f} | "
                     f"{r['worst_stall_ms']:.0f} | "
                     f"{r['p99_stall_ms']:.0f} | {r['steps']} | {r['steps_per_s']:.0f} |")
    text = "\n".join(lines) + "\n"
    append_results(text, args.out)


if __name__ == "__main__":
    main()
