"""The GUI process never imports torch (issue 12): with the engine in its own process (the app's
default, SGM_ENGINE=process), a fresh interpreter builds the real window, loads a preset, trains
and draws frames from the child, runs a compare window, exports a GIF (and cancels a long one) and saves and reopens a
session, and torch is still not in its `sys.modules`. A regression names its culprit: an import
hook records the stack of the first `import torch`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SUBPROCESS_TIMEOUT_S = 300  # three spawned children (engine, compare, export) on a busy 2-core machine

PROBE = r'''
import importlib.abc, json, os, sys, time, traceback
from pathlib import Path

FIRST = []  # the stack of the first torch import, if any


class TorchWatch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch" and not FIRST:
            stack = [f for f in traceback.extract_stack()[:-1] if not f.filename.startswith("<frozen")]
            FIRST.append("".join(traceback.format_list(stack)))
        return None


sys.meta_path.insert(0, TorchWatch())
out = Path(sys.argv[1])
from PySide6.QtWidgets import QApplication

qapp = QApplication([])
from dataclasses import replace
from app.compare_window import open_compare
from app.export import ExportOptions
from app.main_window import MainWindow

steps_done = []


def wait(predicate, timeout=120.0, what=""):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        qapp.processEvents()
        time.sleep(0.005)


def small(cfg, steps):
    return replace(cfg, model=replace(cfg.model, width=32, depth=2),
                   train=replace(cfg.train, steps=steps, batch=128))


report = {}
w = MainWindow(data="8gaussians", device="CPU")
w.ask_unsaved_changes = lambda answer: answer("discard")
w.ask_discard_model = lambda steps, reason, answer: answer(True)
w.show()
wait(lambda: len(w.session.points) == 5000, what="the preset")
report["engine_pid"] = w.worker.pid
w.session.set_run_config(small(w.session.run_config, 150))
w.actions_["train"].trigger()
wait(lambda: w.session.last_frame is not None and w.session.last_frame.step >= 150
     and not w.worker_state.training, what="training")
report["frames"] = w.worker.frames_emitted
report["step"] = int(w.session.last_frame.step)
report["particles"] = list(w.session.last_frame.particles.shape)

compare = open_compare(w, "losses", checked=("dsm", "ncsn"))
compare.steps_box.setValue(30)
compare.particles_box.setValue(100)
compare.start_button.click()
wait(lambda: compare.phase == "done" and compare.last_frames and compare.last_frames[0].phase == "done",
     what="the comparison")
report["compare_pid"] = compare.worker.pid
report["compare_steps"] = [int(f.frame.step) for f in compare.last_frames]
compare.close()
report["compare_alive"] = compare.worker.is_running()

gif = out / "anim.gif"
done = []
w.exporter.exported.connect(done.append)
w.exporter.export_failed.connect(lambda m: done.append("failed: " + m))
w.exporter.start_animation(ExportOptions(path=gif, frames=4, size=(64, 48), n_particles=100))
wait(lambda: done and not w.exporter.busy, what="the export")
report["export"] = done[0]
long_gif, ended = out / "long.gif", []  # a long export, cancelled: its process leaves no file
w.exporter.export_cancelled.connect(lambda: ended.append("cancelled"))
w.exporter.start_animation(ExportOptions(path=long_gif, frames=400, size=(128, 128), sampler="langevin",
                                         n_particles=300))
wait(lambda: w.exporter.progress is not None and w.exporter.progress.value() >= 1, what="the long export")
w.exporter.cancel()
wait(lambda: not w.exporter.busy, what="the cancel")
report["cancelled"] = ended
report["files_after_cancel"] = sorted(p.name for p in out.iterdir())

saved, opened = [], []
w.files.saved.connect(saved.append)
w.files.opened.connect(lambda *a: opened.append(1))
w.files.save_to(out / "s.sgm")
wait(lambda: saved, what="the save")
w.files.open(saved[0])
wait(lambda: opened and w.session.last_frame is not None, what="the open")
wait(lambda: w.session.last_frame.step == report["step"], what="the reopened model's frame")
report["reopened_step"] = int(w.session.last_frame.step)
report["session"] = saved[0]
w.close()
report["engine_alive"] = w.worker.is_running()
report["torch"] = "torch" in sys.modules
report["first_torch_import"] = FIRST[0] if FIRST else ""
(out / "report.json").write_text(json.dumps(report))
'''


def test_the_gui_process_never_imports_torch(tmp_path):
    env = {**os.environ, "SGM_ENGINE": "process", "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["torch"], "the GUI process imported torch, first here:\n" + report["first_torch_import"]
    # It really did the work, in children: their pids are not ours, and they are gone.
    assert report["engine_pid"] and report["compare_pid"] and report["engine_pid"] != report["compare_pid"]
    assert report["step"] == 150 and report["frames"] >= 2 and report["particles"][1] == 2
    assert report["compare_steps"] == [30, 30] and not report["compare_alive"] and not report["engine_alive"]
    gif = tmp_path / "anim.gif"
    assert report["export"] == str(gif)
    with Image.open(gif) as im:
        assert im.n_frames == 4 and im.size == (64, 48)
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 0  # drawn, not a blank frame
    assert report["cancelled"] == ["cancelled"] and report["files_after_cancel"] == ["anim.gif"]  # no temp file
    assert report["reopened_step"] == report["step"] and Path(report["session"]).is_file()
