"""The engine worker on its own thread, driven the way the window drives it (no window here)."""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import gui_helpers
import numpy as np
import pytest
import torch
from gui_helpers import small_config
from PySide6.QtCore import QObject, Slot

from app.workers import EngineSpec, EngineWorker, LoadedData, WorkerState
from sgm_core import engine as engine_module
from sgm_core.config import RunConfig, SamplerConfig
from sgm_core.datasets import make_preset
from sgm_core.live import FieldView, default_bounds

TIMEOUT_MS = 20_000  # generous for a loaded 2-core CI machine; typical waits are < 2 s
LOSS_DROP = 0.9  # see test_trains_and_the_loss_falls
CLOSE_BOUND_S = 3.0  # shutdown must join within ~1 s; 3 s leaves room for CI noise


wait = partial(gui_helpers.wait, timeout=TIMEOUT_MS)
pytestmark = pytest.mark.usefixtures("warm_torch")


def settle(qtbot, h: Harness, quiet_ms: int = 200) -> None:
    """Process events until no frame has arrived for `quiet_ms` (the worker has gone idle)."""
    while True:
        n = len(h.frames)
        qtbot.wait(quiet_ms)
        if len(h.frames) == n:
            return


class Harness(QObject):
    """Collects the worker's signals in the GUI thread; acknowledges frames like the window does."""

    def __init__(self, worker: EngineWorker, consume: bool = True) -> None:
        super().__init__()
        self.worker, self.consume = worker, consume
        self.frames: list = []
        self.failures: list[str] = []
        self.finished: list[int] = []
        self.stops = 0
        self.loads: list[LoadedData] = []
        self.load_failures: list[tuple[int, str]] = []
        self.state = WorkerState()
        worker.progressed.connect(self.on_frame)
        worker.failed.connect(self.on_failed)
        worker.finished_training.connect(self.on_finished)
        worker.stopped.connect(self.on_stopped)
        worker.loaded.connect(self.on_loaded)
        worker.load_failed.connect(self.on_load_failed)
        worker.state_changed.connect(self.on_state)

    @Slot(object)
    def on_frame(self, frame) -> None:  # noqa: ANN001
        self.frames.append(frame)
        if self.consume:
            self.worker.frame_consumed()

    @Slot(str)
    def on_failed(self, message: str) -> None:
        self.failures.append(message)

    @Slot(int)
    def on_finished(self, step: int) -> None:
        self.finished.append(step)

    @Slot()
    def on_stopped(self) -> None:
        self.stops += 1

    @Slot(object)
    def on_loaded(self, result: LoadedData) -> None:
        self.loads.append(result)

    @Slot(int, str)
    def on_load_failed(self, token: int, message: str) -> None:
        self.load_failures.append((token, message))

    @Slot(object)
    def on_state(self, state: WorkerState) -> None:
        self.state = state

    @property
    def last(self):  # noqa: ANN201
        return self.frames[-1]


@pytest.fixture
def dataset():
    return make_preset("8gaussians", n_points=500)


@pytest.fixture
def worker(qapp):
    w = EngineWorker()
    w.start()
    yield w
    w.shutdown()


def start(worker: EngineWorker, dataset, config: RunConfig | None = None, n_particles: int = 300,
          sampler: SamplerConfig | None = None) -> None:
    config = config or small_config()
    worker.set_view(FieldView(bounds=default_bounds(dataset.points), resolution=16, sigma=0.1), "off")
    worker.set_engine(EngineSpec(dataset, config, sampler or SamplerConfig(name="annealed"), n_particles))


def test_trains_and_the_loss_falls(qtbot, worker, dataset):
    h = Harness(worker)
    start(worker, dataset, small_config(steps=400))
    worker.train()
    wait(qtbot, lambda: h.finished == [400])
    wait(qtbot, lambda: h.frames and h.last.step == 400 and not h.state.training)
    losses = h.last.losses
    assert len(losses) == 400
    # NCSN's σ²-weighted loss has a high floor (~0.7 here from ~1.0 at init): a 10% drop of the
    # mean is far outside its batch noise (std of a 100-step mean ~0.01)
    assert losses[-100:].mean() < LOSS_DROP * losses[:20].mean()
    assert h.last.field is not None and np.isfinite(h.last.field.vectors).all()
    assert h.last.elapsed > 0  # training time, not wall time since the engine was built
    assert h.failures == []


def test_worker_thread_uses_one_torch_thread(qtbot, worker, dataset):
    seen = []
    start(worker, dataset)
    worker.call(lambda eng: seen.append(torch.get_num_threads()))
    wait(qtbot, lambda: seen)
    assert seen == [1]


def test_newest_frame_wins_no_backlog(qtbot, worker, dataset):
    h = Harness(worker, consume=False)
    start(worker, dataset, small_config(steps=150))
    worker.train()
    wait(qtbot, lambda: h.finished == [150])
    assert worker.frames_emitted == 1  # the GUI never acknowledged the first: nothing else was sent
    h.consume = True
    worker.frame_consumed()
    wait(qtbot, lambda: len(h.frames) >= 2 and h.last.step == 150)


def test_frames_are_paced_while_training(qtbot, worker, dataset):
    h = Harness(worker)
    start(worker, dataset, small_config(steps=100_000))
    worker.train()
    wait(qtbot, lambda: len(h.frames) >= 12)
    t0 = time.perf_counter()
    n0 = len(h.frames)
    wait(qtbot, lambda: len(h.frames) >= n0 + 15)
    fps = (len(h.frames) - n0) / (time.perf_counter() - t0)
    worker.stop_training()
    wait(qtbot, lambda: h.stops == 1)
    assert fps <= engine_module.MAX_FPS * 4 / 3  # the engine's frame clock, with slack for timer jitter
    steps = [f.step for f in h.frames]
    assert steps == sorted(steps)


def test_huge_learning_rate_reports_divergence_and_keeps_a_usable_model(qtbot, worker, dataset):
    h = Harness(worker)
    start(worker, dataset, small_config(steps=200, lr=1e6))
    worker.train()
    wait(qtbot, lambda: h.failures)
    assert "diverged" in h.failures[0]
    wait(qtbot, lambda: not h.state.training and h.frames and h.last.field is not None)
    frame = h.last
    assert np.isfinite(frame.field.vectors).all()
    assert np.isfinite(frame.losses).all()


def test_injected_nan_restores_the_last_good_weights(qtbot, worker, dataset):
    h = Harness(worker)
    start(worker, dataset, small_config(steps=120))
    worker.train()
    wait(qtbot, lambda: h.finished == [120])
    wait(qtbot, lambda: h.last.step == 120)
    good = h.last.field.vectors.copy()

    def poison(engine) -> None:  # noqa: ANN001
        with torch.no_grad():
            next(engine.trainer.model.parameters()).fill_(float("nan"))

    worker.call(poison)
    worker.train()
    wait(qtbot, lambda: h.failures)
    assert "diverged" in h.failures[0]
    seen = []
    worker.call(lambda eng: seen.append((eng.trainer.step, all(torch.isfinite(p).all() for p in eng.trainer.model.parameters()))))
    wait(qtbot, lambda: seen)
    assert seen == [(120, True)]  # the weights of step 120, not the poisoned ones
    wait(qtbot, lambda: h.last.step == 120 and not h.state.training)
    np.testing.assert_allclose(h.last.field.vectors, good, rtol=0, atol=0)


def test_unexpected_error_is_reported_and_the_loop_keeps_running(qtbot, worker, dataset, capsys):
    h = Harness(worker)
    start(worker, dataset, small_config(steps=30))
    worker.call(lambda eng: 1 / 0)
    wait(qtbot, lambda: h.failures)
    assert "ZeroDivisionError" in h.failures[0]
    worker.train()
    wait(qtbot, lambda: h.finished == [30])
    assert "ZeroDivisionError" in capsys.readouterr().err  # the traceback, for bug reports


def test_train_without_data_fails_politely(qtbot, worker):
    h = Harness(worker)
    worker.set_engine(EngineSpec(None, small_config(), SamplerConfig(), 10))
    worker.train()
    worker.play()
    wait(qtbot, lambda: len(h.failures) == 2)
    assert all("no data" in m for m in h.failures)
    assert not h.state.has_engine and not h.state.training


def test_shutdown_during_training_is_quick(qtbot, worker, dataset):
    w = worker
    h = Harness(w)
    start(w, dataset, small_config(steps=1_000_000))
    w.train()
    w.play()
    wait(qtbot, lambda: h.frames and h.last.step > 20)
    seconds = w.shutdown(timeout=1.0)
    assert not w.is_running()
    assert seconds < CLOSE_BOUND_S
    assert w.shutdown() < 0.1  # a second shutdown is a no-op


def test_rebuild_while_training_stops_training(qtbot, worker, dataset):
    h = Harness(worker)
    start(worker, dataset, small_config(steps=1_000_000))
    worker.train()
    wait(qtbot, lambda: h.state.training)
    start(worker, dataset, small_config(steps=50))
    wait(qtbot, lambda: h.stops == 1 and not h.state.training)
    wait(qtbot, lambda: h.frames and h.last.step == 0)
    worker.train()
    wait(qtbot, lambda: h.finished == [50])


def test_pause_resume_and_another_round(qtbot, worker, dataset):
    h = Harness(worker)
    start(worker, dataset, small_config(steps=100_000))
    worker.train()
    wait(qtbot, lambda: h.frames and h.last.step > 10)
    worker.pause_training()
    wait(qtbot, lambda: h.state.paused and not h.state.training)
    worker.stop_training()
    wait(qtbot, lambda: h.stops == 1 and not h.state.paused)
    wait(qtbot, lambda: h.frames[-1].step == h.state.target)
    stopped_at = h.state.target
    worker.train()  # after Stop, Train runs another configured round from here
    wait(qtbot, lambda: h.state.target == stopped_at + 100_000)
    worker.stop_training()
    wait(qtbot, lambda: h.stops == 2)


def test_train_plays_the_particles_and_restarts_finished_chains_while_it_trains(qtbot, worker, dataset, monkeypatch):
    """"Sample while training": Train sets the particles going; a 10-step ODE chain that ends
    while training goes on starts again from the prior (after the hold); once training stops the
    last chain runs out and play stops."""
    monkeypatch.setattr(engine_module, "CHAIN_HOLD", 0.2)
    h = Harness(worker)
    start(worker, dataset, small_config(steps=10**6), sampler=SamplerConfig(name="ode", steps=10))
    worker.set_steps_per_frame(1)
    wait(qtbot, lambda: h.frames)
    worker.train()
    wait(qtbot, lambda: h.state.training and h.state.playing)
    wait(qtbot, lambda: any(f.sampler_done for f in h.frames))  # the chain reached t = eps ...
    ended = max(i for i, f in enumerate(h.frames) if f.sampler_done)
    wait(qtbot, lambda: any(f.sampler_step == 0 for f in h.frames[ended:]))  # ... and began again
    assert h.state.playing and h.state.training
    worker.stop_training()
    # the last chain runs out (the state may arrive before the frame that shows the end)
    wait(qtbot, lambda: not h.state.training and not h.state.playing and h.last.sampler_done)


def test_without_sample_while_training_train_leaves_the_particles_still(qtbot, worker, dataset):
    h = Harness(worker)
    start(worker, dataset, small_config(steps=300))
    worker.set_follow_training(False)
    worker.train()
    wait(qtbot, lambda: h.finished == [300])
    settle(qtbot, h)
    assert not h.state.playing and all(f.sampler_step == 0 for f in h.frames)


def test_costly_metrics_are_computed_between_frames_not_instead_of_them(qtbot, worker, dataset, monkeypatch):
    """The sample metrics and the PF-ODE likelihood (~0.1 s together) run a piece at a time:
    frames keep coming while one such computation is under way, and its result arrives whole."""
    spans: list[tuple[int, int]] = []
    original = engine_module.Engine._samples_job

    def watched(self, eng):  # noqa: ANN001, ANN202
        first = None
        steps = original(self, eng)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                spans.append((first, self.frames_emitted))
                return done.value
            first = self.frames_emitted if first is None else first
            yield

    monkeypatch.setattr(engine_module.Engine, "_samples_job", watched)
    updates: list[dict] = []
    worker.metrics_updated.connect(updates.append)
    h = Harness(worker)
    start(worker, dataset, n_particles=2000)
    worker.set_metrics(True)
    worker.play()
    wait(qtbot, lambda: any("samples" in u["updated"] for u in updates) and spans)
    begun, ended = spans[0]
    assert ended > begun  # frames went out while the job was part-way
    result = next(u for u in updates if "samples" in u["updated"])
    assert {"sw_ratio", "mmd", "energy", "log_likelihood", "mode_weights"} <= result.keys()
    assert np.isfinite(result["log_likelihood"]) and len(h.frames) > 0


def test_a_new_engine_of_another_dimension_ignores_the_old_view(qtbot, worker, dataset):
    """Found by a random-action run: switching from 2D to 3D data while particles played built a
    frame with the 2D field view before the 3D one arrived, and the engine reported an error."""
    h = Harness(worker)
    start(worker, dataset)
    worker.play()
    wait(qtbot, lambda: len(h.frames) > 3)
    data3 = make_preset("helix", n_points=500)
    worker.set_engine(EngineSpec(data3, small_config(), SamplerConfig(name="annealed"), 300))
    worker.play()
    wait(qtbot, lambda: h.last.dim == 3 and h.last.sampler_step > 3)
    assert h.failures == [] and h.last.field is None  # no field until a 3D view comes
    worker.set_view(FieldView(bounds=default_bounds(data3.points), resolution=12, sigma=0.1), "off")
    wait(qtbot, lambda: h.last.field is not None and h.last.field.positions.shape[1] == 3)
    assert h.failures == []


def test_particles_play_in_steps_per_frame(qtbot, worker, dataset):
    h = Harness(worker)
    start(worker, dataset)
    worker.set_steps_per_frame(7)
    worker.play()
    wait(qtbot, lambda: len(h.frames) >= 5 and h.last.sampler_step >= 21)
    worker.pause_particles()
    wait(qtbot, lambda: not h.state.playing)
    settle(qtbot, h)  # the frame that shows where the particles stopped
    steps = [f.sampler_step for f in h.frames]
    advances = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert all(0 <= d <= 7 for d in advances)  # steps per frame is a ceiling (the frame budget may cut it)
    assert max(advances) == 7  # a few hundred particles are cheap: the ceiling is reached
    worker.step_particles()
    before = h.last.sampler_step
    wait(qtbot, lambda: h.last.sampler_step == before + 7)


def test_spawn_trails_and_sampler_switch(qtbot, worker, dataset):
    h = Harness(worker)
    start(worker, dataset)
    worker.spawn((2.5, 0.0), 400, 0.05)
    wait(qtbot, lambda: h.frames and len(h.last.particles) == 400 and h.last.sampler_step == 0)
    np.testing.assert_allclose(h.last.particles.mean(0), [2.5, 0.0], atol=0.02)  # 400 draws, std 0.05
    worker.set_trails(4)
    worker.set_steps_per_frame(1)
    worker.play()
    wait(qtbot, lambda: h.last.trails is not None and h.last.trails.shape[0] == 4)
    worker.set_sampler(SamplerConfig(name="ode", steps=10))
    # The ODE ends at t = eps: play stops, and the frame that shows the end follows.
    wait(qtbot, lambda: not h.state.playing and h.last.sampler_done)
    worker.reset_particles(50)
    wait(qtbot, lambda: len(h.last.particles) == 50 and h.last.sampler_step == 0)


@pytest.mark.parametrize("heatmap", ["error", "density"])
def test_costly_frame_parts_are_cached(qtbot, worker, dataset, heatmap):
    h = Harness(worker)
    cfg = small_config()
    cfg = replace(cfg, model=replace(cfg.model, kind="energy"))
    worker.set_engine(EngineSpec(dataset, cfg, SamplerConfig(name="annealed"), 100))
    view = FieldView(bounds=default_bounds(dataset.points), resolution=16, sigma=0.2, truth=True)
    worker.set_view(view, heatmap)
    wait(qtbot, lambda: h.frames and h.last.true_field is not None)
    image = h.last.error_map if heatmap == "error" else h.last.heatmap
    assert image is not None and image.shape == (view.heatmap_resolution,) * 2
    first = h.last
    worker.step_particles()
    wait(qtbot, lambda: h.last.sampler_step > 0)
    assert h.last.field is first.field  # the model did not change: same object, no recompute
    assert h.last.true_field is first.true_field


def test_loads_presets_files_and_reports_bad_files(qtbot, worker, tmp_path: Path):
    h = Harness(worker)
    csv = tmp_path / "pts.csv"
    csv.write_text("x,y\n0,0\n1,1\n2,0.5\n")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    worker.load("moons", 1, n_points=300)
    worker.load(str(csv), 2)
    worker.load(str(bad), 3)
    wait(qtbot, lambda: len(h.loads) == 2 and h.load_failures)
    moons, table = h.loads
    assert (moons.token, moons.kind, len(moons.dataset.points)) == (1, "preset", 300)
    assert (table.token, table.kind, len(table.dataset.points)) == (2, "file", 3)
    token, message = h.load_failures[0]
    assert token == 3 and "bad.npy" in message


def test_garbage_is_collected_in_the_gui_thread_once_a_worker_runs(worker):
    """A worker running means automatic (any-thread) garbage collection is off and the GUI thread
    collects on a timer: a cycle holding Qt objects collected in the worker deadlocked a test run
    (worker: Qt mutex then GIL; GUI thread: GIL then that mutex)."""
    import gc

    from PySide6.QtCore import QCoreApplication

    assert worker.is_running()
    assert not gc.isenabled() and QCoreApplication.instance().gui_thread_gc is not None
    gc.enable()  # as the test harness does between tests: the next worker's start turns it off again
    second = EngineWorker()
    second.start()
    assert not gc.isenabled()
    second.shutdown()
