"""Make the README's pictures with the app itself, so they always show what the code does:

    QT_QPA_PLATFORM=offscreen python docs/make_images.py [--steps 3000]

- docs/images/window.png: the main window at 1280x800 after training NCSN on 8 Gaussians in it
  (the learned field, the annealed-Langevin particles, the loss curve and the metrics);
- docs/images/sampling.gif: the same kind of run trained headless (`sgm_core.api.train`) and its
  annealed Langevin sampler animated by `sgm_core.render.render_run`, as `sgm render` does.

About a minute on two cores. Both files are written atomically by the app's own writers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SGM_ENGINE", "thread")  # one process: nothing to spawn for a picture
OUT = REPO / "docs" / "images"
WINDOW_SIZE = (1280, 800)


def wait_for(app, predicate, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def window_png(steps: int) -> Path:
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from sgm_core.video import save_png

    app = QApplication.instance() or QApplication([])
    w = MainWindow(data="8gaussians", device="CPU")
    w.resize(*WINDOW_SIZE)
    w.show()
    wait_for(app, lambda: len(w.session.points) > 0, 60)
    config = w.session.run_config
    w.session.set_run_config(replace(config, train=replace(config.train, steps=steps)))
    w.actions_["train"].trigger()
    wait_for(app, lambda: w.session.last_frame is not None and w.session.last_frame.step >= steps
             and not w.worker_state.training, 600)
    w.actions_["reset_particles"].trigger()  # a fresh chain from the prior, with the trained model
    if not w.worker_state.playing:
        w.actions_["play"].trigger()
    wait_for(app, lambda: w.session.last_frame.sampler_done, 120)  # the particles finished their schedule
    for _ in range(20):  # let the last frames paint
        app.processEvents()
        time.sleep(0.02)
    image = w.grab().toImage()
    from app.export import qimage_pixels

    out = save_png(OUT / "window.png", qimage_pixels(image))
    w.ask_unsaved_changes = lambda answer: answer("discard")  # a picture, not a session to keep
    w.close()
    wait_for(app, lambda: not w.worker.is_running(), 30)
    return out


def sampling_gif(steps: int) -> Path:
    from sgm_core import api
    from sgm_core.render import render_run

    run = api.train("8gaussians", loss="ncsn", steps=steps, seed=0, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        run.save(Path(tmp) / "run")
        return render_run(Path(tmp) / "run", OUT / "sampling.gif", frames=40, fps=12, size=(360, 360), n=1500)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000, help="training steps for each picture")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"wrote {window_png(args.steps)}")
    print(f"wrote {sampling_gif(args.steps)}")


if __name__ == "__main__":
    main()
