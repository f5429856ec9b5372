"""Does the window's layout hold? Qt's own geometry, asked of every visible control.

One check serves the window (a saved layout that fails it is refused at start-up) and the tests
(after every lesson, at 1280×800 and 1024×700): each visible button, combo box and spin box of a
dock (or of the canvas's column: the lesson bar) lies inside it across (what a dock cannot
show is cut off; rows below the fold of a scrolling panel are reachable and allowed) and is not
squeezed below its minimum size hint; the window itself is no wider than its screen. And
`fit_to_screen`, the default size of a window, cut to the screen it opens on.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QDockWidget, QMainWindow, QWidget

CONTROLS = (QAbstractButton, QComboBox, QAbstractSpinBox)
TITLE_BAR = 32  # px a window manager's frame adds above the window: kept free on a short screen


def fit_to_screen(window: QWidget, width: int, height: int) -> None:
    """Resize to width × height, or less where the screen's free area is smaller: a 1440×900
    window on a 1280×800 laptop opened with its right side and status bar off the screen."""
    screen = window.screen()
    if screen is not None:
        free = screen.availableGeometry()
        width, height = min(width, free.width()), min(height, max(free.height() - TITLE_BAR, 1))
    window.resize(width, height)


def _controls(pane: QWidget) -> list[QWidget]:
    """The visible controls of a dock, or of the canvas's column (the lesson bar, the banner)."""
    holder = pane.widget() if isinstance(pane, QDockWidget) else pane
    found: list[QWidget] = []
    for kind in CONTROLS:
        found += [w for w in holder.findChildren(kind) if w.isVisibleTo(pane)]
    return found


def layout_problems(window: QMainWindow, screen_width: int | None = None) -> list[str]:
    """One line per control that is cut off or squeezed (empty: the layout holds)."""
    problems = []
    if screen_width is not None and window.frameGeometry().width() > screen_width:
        problems.append(f"the window is {window.frameGeometry().width()} px wide on a {screen_width} px screen")
    if window.width() < window.minimumSizeHint().width():
        problems.append(f"the window ({window.width()} px) is narrower than its content needs "
                        f"({window.minimumSizeHint().width()} px)")
    # A dock behind another's tab stays "visible" but Qt parks it off-screen: only the tab shown counts.
    docks = [d for d in window.findChildren(QDockWidget)
             if d.isVisible() and not d.isFloating() and d.widget() and not d.visibleRegion().isEmpty()]
    for dock in docks:
        if dock.geometry().right() > window.width() or dock.geometry().left() < 0:
            problems.append(f"the {dock.windowTitle()} dock reaches past the window's edge")
    panes = [(d.windowTitle(), d) for d in docks] + [("canvas", window.centralWidget())]
    for title, pane in panes:
        inner = pane.widget().rect() if isinstance(pane, QDockWidget) else pane.rect()
        holder = pane.widget() if isinstance(pane, QDockWidget) else pane
        for w in _controls(pane):
            top_left = w.mapTo(holder, QPoint(0, 0))
            rect = QRect(top_left, w.size())
            name = f"{title}: {type(w).__name__} {getattr(w, 'text', lambda: '')() or w.toolTip()[:40]!r}"
            if rect.left() < inner.left() or rect.right() > inner.right():
                problems.append(f"{name} is cut off by its dock ({rect.left()}..{rect.right()} of {inner.width()} px)")
            hint = w.minimumSizeHint()
            if w.width() < hint.width() or w.height() < hint.height():
                problems.append(f"{name} is squeezed to {w.width()}×{w.height()} below its minimum "
                                f"{hint.width()}×{hint.height()}")
    return problems


__all__ = ["fit_to_screen", "layout_problems"]
