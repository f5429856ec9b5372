"""Engine sync: keep the engine on the session's data and settings, and never lose a trained model
silently (issue 13).

The window's panels write to the Session; `EngineSync` brings the engine to it. A burst of edits
is coalesced into one rebuild (a debounce timer). A rebuild keeps the engine's model wherever it
fits the new data and settings (`UpdateEngine`: training goes on from it, fine-tuning); where it
cannot (another net, loss family or data dimension, `fresh_model_reason`) a fresh model is built,
asked first when the model holds training (Cancel puts the settings and the data back). It also
restarts the engine process after a crash with the last weights the engine sent.

It gets narrow collaborators, as a feature gets a `FeatureContext` (app/context.py): the session,
the engine link, the engine's task runner, the source controller, a notifier, and a `SyncHost`
for the window-side effects. So it can be driven without a window (tests/test_engine_sync.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, QTimer

from sgm_core.config import RunConfig, SamplerConfig, fresh_model_reason
from sgm_core.engine import restore_engine
from sgm_core.errors import DataError

from .workers import EngineSpec

if TYPE_CHECKING:
    from sgm_core.datasets import Dataset

    from .context import Notifier
    from .engine_tasks import EngineTasks
    from .session import Session

REBUILD_DELAY_MS = 80  # coalesce a burst of setting edits into one engine rebuild


class EngineSource(Protocol):
    """Where a flow starts (app/source_layer.py's SourceController)."""

    def engine_source(self, config: RunConfig, dim: int | None) -> tuple[RunConfig, Dataset | None]: ...


class SyncHost(Protocol):
    """The window-side effects of engine sync (the window's adapter looks its members up when
    called: tests replace `ask_discard_model` on the window)."""

    def clear_field(self) -> None: ...  # the old model's arrows go (2D and 3D)

    def apply_layers(self) -> None: ...  # the layers follow whether there is an engine

    def send_view(self) -> None: ...  # the field view to the engine, now

    def send_trails(self) -> None: ...

    def clear_metrics(self) -> None: ...  # no data: the metrics of the data before go

    def clear_progress(self) -> None: ...  # no model: its step count, time and loss curve go

    def training(self) -> bool: ...  # the engine is training now

    def in_lesson(self) -> bool: ...  # a lesson brings its own model: nothing is asked

    def metrics_shown(self) -> bool: ...  # the Metrics dock is visible (metrics are computed only then)

    def ask_discard_model(self, steps: int, reason: str, answer: Callable[[bool], None]) -> None: ...

    def engine_restarting(self) -> None: ...  # a crashed engine: idle run state, "engine starting…"

    def engine_restarted(self) -> None: ...  # the new engine holds the restored model (lessons check again)


class EngineSync(QObject):
    """The engine's model and what was last sent to it; the debounced rebuild."""

    def __init__(self, session: Session, engine: Any, tasks: EngineTasks, sources: EngineSource | None,
                 notifier: Notifier, host: SyncHost, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.engine = engine  # the engine link (app/engine_link.py) or a queued worker
        self.tasks = tasks
        self.sources = sources  # may be set later (the window's is built after this, and starts a rebuild)
        self.notifier = notifier
        self.host = host
        self.sent: tuple | None = None  # (run config, sampler config, n_particles) the engine was built with
        self.engine_ok = False  # the last rebuild had trainable data
        self.model: tuple[RunConfig, int] | None = None  # (config, D) of the model the engine holds
        self.model_index = 0  # the undo-stack index of the data that model last trained on
        self.asking = False  # the "Discard the trained model?" question is open
        self.rebuild_timer = QTimer(self, singleShot=True, interval=REBUILD_DELAY_MS)
        self.rebuild_timer.timeout.connect(self.sync)

    # -- listening ----------------------------------------------------------------------------
    def rebuild_later(self) -> None:
        """The data or the source changed: sync once the edits settle."""
        self.rebuild_timer.start()

    def on_config_changed(self) -> None:
        """Settings changed: a run-config change rebuilds (debounced); the sampler and the
        particle count go to the engine live, unless a rebuild is pending (it carries them)."""
        s = self.session
        sent = self.sent
        if sent is None or s.run_config != sent[0]:
            self.rebuild_timer.start()
        elif not self.rebuild_timer.isActive():
            if s.sampler_config != sent[1]:
                self.engine.set_sampler(s.sampler_config)
            if s.particles.n_particles != sent[2]:
                self.engine.reset_particles(s.particles.n_particles)
            self.sent = (sent[0], s.sampler_config, s.particles.n_particles)
        self.send_particle_options()

    def send_particle_options(self) -> None:
        s = self.session
        self.engine.set_steps_per_frame(s.particles.steps_per_frame)
        self.engine.set_reference_score(s.particles.reference_score)
        self.engine.set_follow_training(s.particles.follow_training)

    def on_guidance_changed(self) -> None:
        """The Sampler dock's class or w moved: the engine follows live (a pending rebuild carries it)."""
        if self.engine_ok and self.model is not None and self.model[0].model.classes:
            self.engine.set_guidance(*(self.session.guide() or (None,)))
            if not self.host.training():  # a finished chain would hold still: sample afresh under the new w
                self.engine.reset_particles(self.session.particles.n_particles)
                self.engine.play()

    # -- the model ----------------------------------------------------------------------------
    def flush_rebuild(self) -> None:
        """Send a pending (debounced) sync now, so the next command reaches the engine it is for."""
        if self.rebuild_timer.isActive() or self.sent is None:
            self.sync()

    def trained_steps(self) -> int:
        """Training steps the engine's model holds (0: nothing to lose)."""
        frame = self.session.last_frame
        return int(frame.step) if frame is not None and self.model is not None else 0

    def model_change_reason(self) -> str | None:
        """Why the session's data or settings need a new model (None: the trained one goes on)."""
        if self.model is None:
            return None
        try:
            dim = self.session.dataset().dim
        except DataError:
            return None  # nothing to train on: the model waits for data
        config, model_dim = self.model
        return fresh_model_reason(config, self.session.model_config(), model_dim, dim)

    def sync(self, ask: bool = True) -> None:
        """Bring the engine to the session's data and settings: the same model wherever it fits
        (training goes on from it, fine-tuning); where it cannot (another net, loss or D) a fresh
        one, asked first when the model holds training (Cancel puts the data and settings back)."""
        self.rebuild_timer.stop()
        if self.asking:
            return  # the open question decides, on the state it finds when answered
        reason = self.model_change_reason()
        steps = self.trained_steps()
        if reason is None or not steps or not ask or self.host.in_lesson():
            self.send_engine(keep=reason is None)
            return
        self.asking = True

        def answered(discard: bool) -> None:
            self.asking = False
            if not discard:
                self.put_back_model_settings()
                if self.unchanged():
                    self.rebuild_timer.stop()  # the data put back restarted it
                    return  # all put back: the engine goes on as it was (its metric curves too)
            self.sync(ask=False)

        self.host.ask_discard_model(steps, reason, answered)

    def unchanged(self) -> bool:
        """The session is what the engine was last sent: its settings, and the data at the undo
        index that model last trained on."""
        s = self.session
        return (self.sent == (s.run_config, s.sampler_config, s.particles.n_particles)
                and s.undo_stack.index() == self.model_index)

    def put_back_model_settings(self) -> None:
        """Cancel of the question: the settings the model was trained with, and its data's D."""
        config, dim = self.model
        s = self.session
        if fresh_model_reason(config, s.model_config(), dim, dim) is not None:
            own = replace(config, model=replace(config.model, classes=s.run_config.model.classes))  # classes follow the data
            s.restore(run_config=own, sampler_config=self.sent[1], particles=s.particles, view=s.view,
                      brush_radius=s.brush_radius, brush_density=s.brush_density)
        if s.data.dim != dim:
            s.undo_stack.setIndex(self.model_index)  # back to the data the model was trained on
        self.notifier.status("Kept the trained model and its settings", 6000)

    def send_engine(self, keep: bool = False) -> None:
        """Send the session to the engine: keep=True goes on with the same model (UpdateEngine),
        else a fresh one is built (Reset; training stops, Train starts afresh)."""
        self.rebuild_timer.stop()
        s = self.session
        spec = self.engine_spec()
        dataset = spec.dataset
        if self.host.training() and self.sent is not None and not keep:
            self.notifier.status("Settings changed: training stopped — press Train to start again", 6000)
        self.engine_ok = dataset is not None
        self.sent = (s.run_config, s.sampler_config, s.particles.n_particles)
        if dataset is not None:
            self.model, self.model_index = (s.model_config(), dataset.dim), s.undo_stack.index()
        else:
            self.host.clear_metrics()  # the empty canvas shows no metrics of the data before
            if not keep:
                self.model = None
                self.host.clear_progress()  # no model: the old one's step count and time go too
        if not keep:
            self.host.clear_field()  # the old model's arrows must not linger over new data
        self.host.send_view()  # first, so the engine's next frame already carries the field
        if keep:
            self.engine.update_engine(spec)
        else:
            self.engine.set_engine(spec)
        self.host.apply_layers()

    def engine_spec(self) -> EngineSpec:
        """The engine the session describes (no dataset for an empty or one-point drawing)."""
        s = self.session
        try:
            dataset = s.dataset()
        except DataError:
            dataset = None  # nothing to train until more is drawn
        config, source = self.sources.engine_source(s.model_config(), dataset.dim if dataset is not None else None)
        guide = s.guide() if config.model.classes else None
        return EngineSpec(dataset, config, s.sampler_config, s.particles.n_particles, source, guide)

    def adopt_engine(self, run: RunConfig, sampler: SamplerConfig, n_particles: int, has_engine: bool) -> None:
        """The worker already holds the engine of an opened session: record it as the one sent, so
        the session edits that follow rebuild nothing (a rebuild would discard its weights)."""
        self.rebuild_timer.stop()
        self.sent = (run, sampler, n_particles)
        self.engine_ok = has_engine
        self.model = (run, self.session.data.dim) if has_engine else None
        self.model_index = self.session.undo_stack.index()
        self.host.clear_field()  # the previous model's arrows must not linger
        self.host.apply_layers()

    # -- a crashed engine ---------------------------------------------------------------------
    def on_engine_died(self, code: int) -> None:
        """The engine process ended on its own (a crash, an OOM kill): start another and give it
        what this process holds, the data, every setting and the last weights the engine sent."""
        saved = getattr(self.engine, "checkpoint", None)
        spec = self.engine_spec()
        if saved is not None and saved.config != spec.config:
            saved = None  # weights of settings changed since: they would not fit
        how = f"with the weights of step {saved.step:,}" if saved is not None else "with a fresh model"
        self.notifier.error(f"the engine stopped unexpectedly (exit code {code}) and was restarted {how}; "
                            "your data and settings were kept")
        self.host.engine_restarting()
        self.engine.start()
        s = self.session
        self.send_particle_options()
        self.engine.set_metrics(self.host.metrics_shown())
        self.host.send_trails()
        self.host.send_view()
        self.sent = (s.run_config, s.sampler_config, s.particles.n_particles)
        self.engine_ok = spec.dataset is not None
        self.model = (spec.config, spec.dataset.dim) if spec.dataset is not None else None
        self.tasks.replace_engine(partial(restore_engine, spec, saved), lambda _step: None, self.notifier.error)
        self.host.engine_restarted()  # after the engine: its checks and play go to the restored one
