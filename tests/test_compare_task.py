"""The compare runs' Qt-free task (`sgm_core.compare.CompareTask`), driven directly with its typed
commands as both hosts (a child process, a thread) drive it: no thread, no process, no window."""

from __future__ import annotations

import pickle
import time

import cloudpickle
import numpy as np
import pytest

from sgm_core import compare as core
from sgm_core.config import LossConfig, ModelConfig, RunConfig, SamplerConfig, TrainConfig
from sgm_core.datasets import make_preset

SMALL = RunConfig(model=ModelConfig(width=32, depth=2), loss=LossConfig(name="ncsn"),
                  train=TrainConfig(batch=128, steps=40))
DEADLINE_S = 60.0  # a loaded 2-core box; the loop below takes about a second alone


def run_until(task: core.CompareTask, events: list, done, acknowledge: bool = True) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, f"no end; events so far: {[type(e).__name__ for e in events]}"
        task.work()
        if acknowledge and not task.drawn:
            task.handle([core.FrameDrawn()])  # the GUI drew the list


@pytest.fixture(scope="module")
def data():
    return make_preset("8gaussians", n_points=500)


def test_two_losses_train_equal_steps_then_sample_from_one_start(data):
    events: list = []
    task = core.CompareTask(events.append, max_fps=1000.0)
    entries = tuple(core.CompareEntry(name, RunConfig(model=SMALL.model, loss=LossConfig(name=name),
                                                      train=SMALL.train), SamplerConfig(name="annealed", steps=5))
                    for name in ("dsm", "ncsn"))
    spec = core.CompareSpec(data, "losses", entries, n_particles=64, train_steps=40)
    task.handle([core.Setup(spec), core.Run()])
    run_until(task, events, lambda: any(isinstance(e, core.PhaseChanged) and e.phase == "done" for e in events))
    task.work()  # the final list
    phases = [e.phase for e in events if isinstance(e, core.PhaseChanged)]
    assert phases == ["training", "sampling", "done"]
    last = [e for e in events if isinstance(e, core.CompareFrames)][-1].frames
    assert [f.label for f in last] == ["dsm", "ncsn"] and all(f.frame.step == 40 for f in last)
    assert all(f.frame.sampler_done and np.isfinite(f.sw_ratio) for f in last)
    assert np.array_equal(last[0].initial_particles, last[1].initial_particles)  # equal draws, equal priors
    assert not any(isinstance(e, core.CompareFailed) for e in events)


def test_no_second_frame_list_before_the_gui_drew_the_first(data):
    events: list = []
    task = core.CompareTask(events.append, max_fps=1000.0)
    entry = core.CompareEntry("ncsn", SMALL, SamplerConfig(name="annealed", steps=5))
    task.handle([core.Setup(core.CompareSpec(data, "losses", (entry, entry), n_particles=32, train_steps=10_000)),
                 core.Run()])
    for _ in range(30):
        task.work()
    assert sum(isinstance(e, core.CompareFrames) for e in events) == 1 and not task.drawn
    task.handle([core.FrameDrawn()])
    deadline = time.monotonic() + DEADLINE_S
    while sum(isinstance(e, core.CompareFrames) for e in events) < 2:
        assert time.monotonic() < deadline
        task.work()


def test_bad_commands_answer_one_sentence_and_everything_crosses_a_process_boundary(data):
    events: list = []
    task = core.CompareTask(events.append)
    task.handle([core.Setup(core.CompareSpec(data, "losses", (), train_steps=10)), core.SetViewAxis(5)])
    task.handle([object()])
    messages = [e.message for e in events if isinstance(e, core.CompareFailed)]
    assert messages == ["nothing to compare: tick at least one entry", "view axis must be 0, 1 or 2, got 5",
                        "unknown compare command object"]
    entry = core.CompareEntry("ncsn", SMALL, SamplerConfig(name="annealed"))
    setup = core.Setup(core.CompareSpec(data, "samplers", (entry,)))
    back = pickle.loads(cloudpickle.dumps(setup))  # as ProcessHost sends and the child reads
    assert back.spec.entries == setup.spec.entries and np.array_equal(back.spec.dataset.points, data.points)
    for message in (core.SetBounds(((-1.0, 1.0),) * 2), core.FrameDrawn(), core.PhaseChanged("done"),
                    core.CompareFailed("x")):
        assert pickle.loads(cloudpickle.dumps(message)) == message


MODE_RADIUS = 0.6  # data units: 8gaussians' modes have std 0.15 and sit ~1.9 apart, so 4 std is "on a mode"


def test_compared_flows_start_from_the_windows_source_and_the_others_from_noise():
    """The window's Source layer (CompareSpec.source): the fm and ot-fm runs' particles start on it,
    in "losses" and in "samplers" mode; dsm, which has no source, starts from its Gaussian prior."""
    data, source = make_preset("moons", n_points=500), make_preset("8gaussians", n_points=2000)
    modes = source.gmm.means.numpy()

    def on_source(points: np.ndarray) -> float:
        return float((np.linalg.norm(points[:, None] - modes[None], axis=-1).min(1) < MODE_RADIUS).mean())

    def initial(mode: str, names: tuple[str, ...], samplers: tuple[str, ...]) -> list[np.ndarray]:
        events: list = []
        task = core.CompareTask(events.append, max_fps=1000.0)
        entries = tuple(core.CompareEntry(f"{n} {s}", RunConfig(model=SMALL.model, loss=LossConfig(name=n),
                                                                train=SMALL.train), SamplerConfig(name=s, steps=4))
                        for n, s in zip(names, samplers, strict=True))
        task.handle([core.Setup(core.CompareSpec(data, mode, entries, n_particles=300, train_steps=0, source=source))])
        run_until(task, events, lambda: any(isinstance(e, core.CompareFrames) for e in events))
        frames = next(e for e in events if isinstance(e, core.CompareFrames)).frames
        return [f.initial_particles for f in frames]  # data coordinates

    fm, ot, dsm = initial("losses", ("fm", "ot-fm", "dsm"), ("heun", "euler", "annealed"))
    assert on_source(fm) > 0.99 and on_source(ot) > 0.99
    assert on_source(dsm) < 0.5
    heun, euler = initial("samplers", ("fm", "fm"), ("heun", "euler"))
    assert np.array_equal(heun, euler) and on_source(heun) > 0.99


def test_a_compared_flow_is_judged_by_its_velocity(data):
    """fm's error in the compare titles is its velocity's (`LiveEngine.field_error`) at t = σmin: O(1)
    after a few steps, where the score form at t = 0.01 reads ~10² (it divides by t); dsm keeps the score's."""
    events: list = []
    task = core.CompareTask(events.append, max_fps=1000.0)
    entries = tuple(core.CompareEntry(name, RunConfig(model=SMALL.model, loss=LossConfig(name=name), train=SMALL.train),
                                      SamplerConfig(name=sampler, steps=4))
                    for name, sampler in (("fm", "heun"), ("dsm", "annealed")))
    task.handle([core.Setup(core.CompareSpec(data, "losses", entries, n_particles=64, train_steps=40)), core.Run()])
    run_until(task, events, lambda: any(isinstance(e, core.PhaseChanged) and e.phase == "done" for e in events))
    task.work()
    last = [e for e in events if isinstance(e, core.CompareFrames)][-1].frames
    fm, dsm = last
    assert (fm.error_measure, dsm.error_measure) == ("velocity", "score")
    assert fm.score_error is not None and 0 < fm.score_error < 3, fm.score_error
