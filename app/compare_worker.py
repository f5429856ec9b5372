"""The compare window's host for `sgm_core.compare.CompareTask`: in a process of its own (the
window's default, so its torch state never enters the GUI process and its training does not share
the GUI's interpreter lock) or, with SGM_ENGINE=thread, in a QThread (as `EngineWorker`).

`CompareCommands` is the API both hosts share: each method sends one typed command
(`sgm_core.compare`), and the task's events come back as the signals the window listens to.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from sgm_core import compare as core
from sgm_core.compare import MAX_FPS, CompareEntry, CompareFrame, CompareSpec, eval_sigma

from .engine_link import ProcessHost, uses_processes
from .queued_worker import QueuedWorker

__all__ = ["CompareEntry", "CompareFrame", "CompareLink", "CompareSpec", "CompareWorker", "eval_sigma",
           "make_compare_worker"]

GUI_WAIT = 0.05  # thread host: while the GUI draws a frame list this thread waits (it shares the GIL)


class CompareCommands:
    """Mixed into a QObject with the compare signals and a host's `send(command)`."""

    send: Callable[[object], None]

    def setup(self, spec: CompareSpec) -> None:
        """Build the engines (nothing runs until `run`)."""
        self.send(core.Setup(spec))

    def run(self) -> None:
        """Start, or resume after `pause`."""
        self.send(core.Run())

    def pause(self) -> None:
        self.send(core.Pause())

    def sample_again(self) -> None:
        """Every entry samples again from the same starting particles with the current model(s)."""
        self.send(core.SampleAgain())

    def set_bounds(self, bounds: tuple[tuple[float, float], ...]) -> None:
        """The plots' view box: 2D bounds (for 3D data, of the plane the plots show)."""
        self.send(core.SetBounds(tuple(tuple(map(float, pair)) for pair in bounds)))

    def set_view_axis(self, axis: int) -> None:
        """3D data: look along x (0), y (1) or z (2)."""
        self.send(core.SetViewAxis(int(axis)))

    def frame_consumed(self) -> None:
        """The GUI drew the last frame list (call once it is painted): the next one may come."""
        self.send(core.FrameDrawn())

    def deliver(self, event: object) -> None:
        match event:
            case core.CompareFrames(frames):
                self.frames_emitted += 1
                self.progressed.emit(frames)
            case core.CompareFailed(message):
                self.failed.emit(message)
            case core.PhaseChanged(phase):
                self.phase_changed.emit(phase)


class CompareWorker(CompareCommands, QueuedWorker):
    """The thread host (SGM_ENGINE=thread); every public method is thread-safe."""

    progressed = Signal(object)  # list[CompareFrame], one per entry, in entry order
    failed = Signal(str)
    phase_changed = Signal(str)

    def __init__(self, max_fps: float = MAX_FPS) -> None:
        super().__init__("CompareWorker")
        self.frames_emitted = 0
        self.core = core.CompareTask(self.deliver, max_fps, stopping=self._stop.is_set)

    def _work(self) -> bool:
        if not self.core.drawn:  # the GUI is drawing our last list: leave it the GIL a while
            self._wake.wait(GUI_WAIT)
            self._wake.clear()
            self._drain()  # its FrameDrawn, if it came
        return self.core.work()


class CompareLink(CompareCommands, ProcessHost):
    """The process host: a spawned child runs the task (sgm_core.engine_process, task "compare")."""

    progressed = Signal(object)  # list[CompareFrame], one per entry, in entry order
    failed = Signal(str)
    phase_changed = Signal(str)

    task = "compare"
    default_fps = MAX_FPS

    def __init__(self, max_fps: float = MAX_FPS) -> None:
        super().__init__(1, max_fps)
        self.died.connect(lambda code: self.failed.emit(
            f"the comparison's process stopped (exit code {code}); press Start to run it again"))

    def setup(self, spec: CompareSpec) -> None:
        if not self.is_running() and self._proc is None:
            self.start()  # it died: a fresh one takes the new comparison
        super().setup(spec)

    def _deliver(self, event: object) -> None:
        self.deliver(event)


def make_compare_worker() -> QObject:
    """A compare window's host: its own process, or (SGM_ENGINE=thread) a thread in this one."""
    return CompareLink() if uses_processes() else CompareWorker()
