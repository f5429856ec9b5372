"""`sgm-playground`: start the Score Field Playground window.

Without a display (Linux with neither DISPLAY nor WAYLAND_DISPLAY, and no QT_QPA_PLATFORM chosen)
it prints one line pointing at the headless CLI and returns 2, instead of Qt's abort.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

NO_DISPLAY_MESSAGE = ("sgm-playground: no display found; use the `sgm` CLI for headless work "
                      "(or set QT_QPA_PLATFORM=offscreen)")


def display_available(environ: os._Environ | dict | None = None, platform: str | None = None) -> bool:
    """True unless this is Linux (or another X11 Unix) with no display and no Qt platform chosen."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin", "cygwin")):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("QT_QPA_PLATFORM"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sgm-playground", description="Score Field Playground: draw a "
                                     "distribution, train a score network, watch the field and particles live.")
    parser.add_argument("--data", default="8gaussians", metavar="PATH_OR_PRESET",
                        help="preset name or data file to open with (default: 8gaussians)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not display_available():
        print(NO_DISPLAY_MESSAGE, file=sys.stderr)
        return 2

    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
    from PySide6.QtWidgets import QApplication, QSplashScreen

    from .views.plot3d import share_gl_contexts

    share_gl_contexts()  # before the QApplication exists: several GL views share shader programs
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("ScoreFieldPlayground")
    app.setApplicationName("Playground")
    app.setApplicationDisplayName("Score Field Playground")

    pixmap = QPixmap(420, 140)
    pixmap.fill(QColor("#1f2a44"))
    painter = QPainter(pixmap)
    painter.setPen(QColor("white"))
    painter.setFont(QFont(app.font().family(), 16, QFont.Weight.Bold))
    painter.drawText(pixmap.rect().adjusted(0, -20, 0, 0), Qt.AlignmentFlag.AlignCenter, "Score Field Playground")
    painter.end()
    splash = QSplashScreen(pixmap)
    splash.show()
    splash.showMessage("Warming up torch…", Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter,
                       QColor("white"))
    app.processEvents()

    device = None  # the engine process warms torch up itself and reports its device when ready
    if os.environ.get("SGM_ENGINE", "process") == "thread":
        from .workers import warm_up_torch  # imports torch: slow the first time

        device = warm_up_torch()  # the first Adam imports torch._dynamo (~1 s): here, not on the first Train
    splash.showMessage("Opening…", Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter, QColor("white"))
    app.processEvents()

    from .main_window import MainWindow

    window = MainWindow(data=args.data, device=device)
    window.show()
    splash.finish(window)
    return run_window(app, window)


def run_window(app: QApplication, window: MainWindow) -> int:
    """Run the event loop until the window closes; the exit code (128 + the signal's number when
    a signal ended it, as shells report it, with one line on stderr saying what became of the work)."""
    received = end_on_signals(window)
    code = int(app.exec())
    if not received:
        return code
    kept = window.recovery.path.exists()
    print(f"sgm-playground: ended by {signal.Signals(received[0]).name}; "
          + ("the unsaved work was written aside and is offered when the playground next opens" if kept
             else "there was no unsaved work"), file=sys.stderr)
    return 128 + received[0]  # as shells report a death by that signal


def end_on_signals(window: MainWindow) -> list[int]:
    """SIGINT (Ctrl+C), SIGTERM and SIGHUP end the window as Quit does, but unsaved work is written
    aside for recovery instead of asked about (`MainWindow.end_by_signal`). Returns the list the
    signals received are appended to.

    Qt's event loop runs in C++, where Python's handlers wait for the next Python bytecode, which
    an idle window may not run for a long time: the signal also writes a byte to a socket that a
    QSocketNotifier watches (`signal.set_wakeup_fd`), so the window answers at once."""
    from PySide6.QtCore import QSocketNotifier

    received: list[int] = []
    ours, theirs = socket.socketpair()
    for end in (ours, theirs):
        end.setblocking(False)
    signal.set_wakeup_fd(theirs.fileno())

    def record(signum: int, _frame: object) -> None:
        received.append(signum)

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):  # no SIGHUP on Windows
            signal.signal(getattr(signal, name), record)
    notifier = QSocketNotifier(ours.fileno(), QSocketNotifier.Type.Read, window)

    def wake() -> None:
        try:
            ours.recv(64)
        except OSError:
            pass
        if received:
            window.end_by_signal()

    notifier.activated.connect(wake)
    window.signal_wakeup = (ours, theirs, notifier)  # kept alive with the window
    return received


if __name__ == "__main__":
    raise SystemExit(main())
