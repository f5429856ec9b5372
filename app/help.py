"""The Help menu (user guide, keyboard shortcuts, About) and File ▸ Examples.

The shortcut list is read from the window's own QActions when it opens, so it cannot drift from
what the keys do. Versions come from the imported Qt modules and from `importlib.metadata`: the
GUI process need not import torch to say which torch the engine runs.
"""

from __future__ import annotations

import importlib.metadata as metadata
import platform
from collections.abc import Callable, Iterable
from pathlib import Path

import pyqtgraph as pg
import PySide6
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

ROOT = Path(__file__).resolve().parent.parent
USER_GUIDE = ROOT / "docs" / "user_guide.md"
EXAMPLES_DIR = ROOT / "assets" / "examples"
DISTRIBUTION = "score-field-playground"
LICENCE_FALLBACK = "MIT"  # pyproject's `license`, for a checkout that is not installed
EXAMPLE_TIPS = {  # what each bundled file shows; a file not listed still appears, with its name
    "galaxy.csv": "A two-armed spiral galaxy: 2D points from a CSV file",
    "heart.png": "A heart drawn in black on white: an image becomes a density",
    "sgm-letters.png": "The letters SGM as an image: thin shapes are hard for a small σ",
    "saddle.xyz": "A saddle surface in 3D (XYZ point cloud)",
    "trefoil.ply": "A trefoil knot in 3D (PLY point cloud): a curve-like manifold",
}
SHORTCUT_KEYS = ("F1", "Ctrl+/")


def plain_text(action: QAction) -> str:
    """An action's menu text without mnemonics or the trailing ellipsis."""
    return action.text().replace("&", "").rstrip("…").strip()


def shortcut_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """(action, its shortcuts) for every action that has one, sorted by action, each once."""
    rows: dict[str, str] = {}
    for action in actions:
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty()]
        if keys and plain_text(action):
            rows.setdefault(plain_text(action), ", ".join(keys))
    return sorted(rows.items(), key=lambda row: row[0].lower())


def version_of(distribution: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def licence() -> str:
    """The project's licence, as its package metadata says (the pyproject value otherwise)."""
    try:
        meta = metadata.metadata(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return LICENCE_FALLBACK
    return meta.get("License-Expression") or meta.get("License") or LICENCE_FALLBACK


def about_text(device: str) -> str:
    """The About box's rich text: program, versions, the device, the licence."""
    versions = (("Python", platform.python_version()), ("PySide6", PySide6.__version__),
                ("Qt", PySide6.QtCore.qVersion()), ("pyqtgraph", pg.__version__), ("torch", version_of("torch")))
    rows = "".join(f"<tr><td>{name}</td><td>&nbsp;{value}</td></tr>" for name, value in versions)
    return (f"<h3>Score Field Playground {version_of(DISTRIBUTION)}</h3>"
            "<p>Train score-based and diffusion models on 2D/3D toy data and watch them against exact "
            "ground truth.</p>"
            f"<table>{rows}<tr><td>Device</td><td>&nbsp;{device}</td></tr></table>"
            f"<p>Licence: {licence()}</p>")


def _dialog(parent: QWidget, title: str, body: QWidget, size: tuple[int, int]) -> QDialog:
    """A non-modal dialog with `body` and a Close button (Esc closes it too)."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    layout = QVBoxLayout(dialog)
    layout.addWidget(body, 1)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout.addWidget(buttons)
    dialog.resize(*size)
    return dialog


class HelpMenu:
    """Help ▸ User guide / Keyboard shortcuts / About, and File ▸ Examples, for one main window.

    `device` says where the engine trains (asked when About opens); `open_file` opens a data file."""

    def __init__(self, window: QMainWindow, device: Callable[[], str], open_file: Callable[[str], None],
                 file_menu: QMenu | None) -> None:
        self.window, self._device, self._open_file = window, device, open_file
        self.dialogs: dict[str, QDialog] = {}  # the open dialog of each kind (one at a time)
        menu = window.menuBar().addMenu("&Help")
        menu.setToolTipsVisible(True)
        self.actions = {
            "user_guide": self._add(menu, "User guide…", "A short guide to the playground", (), self.show_guide),
            "shortcuts": self._add(menu, "Keyboard shortcuts…", "Every keyboard shortcut of this window",
                                   SHORTCUT_KEYS, self.show_shortcuts),
            "about": self._add(menu, "About Score Field Playground…", "Versions, device and licence", (),
                               self.show_about),
        }
        self.examples_menu = self._examples_menu(file_menu)

    def _add(self, menu: QMenu, text: str, tip: str, keys: tuple[str, ...], slot: Callable[[], object]) -> QAction:
        action = QAction(text, self.window)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.window.addAction(action)  # shortcuts work wherever the focus is
        menu.addAction(action)
        return action

    def _examples_menu(self, file_menu: QMenu | None) -> QMenu:
        """File ▸ Examples: one entry per bundled example file, opened as data."""
        menu = QMenu("&Examples", self.window)
        menu.setToolTipsVisible(True)
        files = sorted(EXAMPLES_DIR.glob("*.*")) if EXAMPLES_DIR.is_dir() else []
        for path in files:
            if path.suffix == ".py":
                continue
            action = menu.addAction(path.name)
            action.setToolTip(EXAMPLE_TIPS.get(path.name, f"Open the example {path.name}"))
            action.triggered.connect(lambda _=False, p=str(path): self._open_file(p))
        menu.setEnabled(bool(menu.actions()))
        if file_menu is not None:  # after Open Recent, where a user looks for files to open
            recent = next((a for a in file_menu.actions() if a.menu() is not None), None)
            later = file_menu.actions()[file_menu.actions().index(recent) + 1] if recent is not None else None
            file_menu.insertMenu(later, menu) if later is not None else file_menu.addMenu(menu)
        return menu

    def _show(self, key: str, dialog: QDialog) -> QDialog:
        old = self.dialogs.get(key)
        if old is not None:
            old.close()
        dialog.destroyed.connect(lambda *_: self.dialogs.get(key) is dialog and self.dialogs.pop(key))
        self.dialogs[key] = dialog
        dialog.show()
        dialog.raise_()
        return dialog

    def show_guide(self) -> QDialog:
        browser = QTextBrowser()
        browser.setOpenExternalLinks(True)
        browser.setSearchPaths([str(USER_GUIDE.parent)])  # pictures next to the guide
        try:
            browser.setMarkdown(USER_GUIDE.read_text(encoding="utf-8"))
        except OSError:
            browser.setPlainText(f"The user guide ({USER_GUIDE}) is missing from this installation.")
        return self._show("user_guide", _dialog(self.window, "User guide", browser, (640, 620)))

    def show_shortcuts(self) -> QDialog:
        rows = shortcut_rows(self.window.actions())
        table = QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, (text, keys) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(text))
            table.setItem(i, 1, QTableWidgetItem(keys))
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        return self._show("shortcuts", _dialog(self.window, "Keyboard shortcuts", table, (420, 560)))

    def show_about(self) -> QDialog:
        label = QLabel(about_text(self._device()))
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setWordWrap(True)
        return self._show("about", _dialog(self.window, "About Score Field Playground", label, (420, 300)))


__all__ = ["HelpMenu", "about_text", "licence", "shortcut_rows"]
