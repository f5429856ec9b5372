"""Help ▸ User guide / Keyboard shortcuts / About, and File ▸ Examples."""

from __future__ import annotations

import platform

import pyqtgraph as pg
import PySide6
import pytest
from gui_helpers import open_window, wait
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel, QTableWidget, QTextBrowser

from app.compare_window import find_menu
from app.help import EXAMPLES_DIR, version_of


@pytest.fixture
def window(qtbot):
    w = open_window(qtbot, data=None)
    yield w
    w.close()


def _rows(table: QTableWidget) -> dict[str, str]:
    return {table.item(i, 0).text(): table.item(i, 1).text() for i in range(table.rowCount())}


def test_help_menu_lists_guide_shortcuts_and_about(window):
    menu = find_menu(window.menuBar(), "&Help")
    assert menu is not None
    texts = [a.text() for a in menu.actions()]
    assert texts == ["User guide…", "Keyboard shortcuts…", "About Score Field Playground…"]
    keys = {k.toString() for k in window.help.actions["shortcuts"].shortcuts()}
    assert keys == {"F1", "Ctrl+/"}


def test_user_guide_shows_the_guide_in_the_repo(window):
    dialog = window.help.show_guide()
    text = dialog.findChild(QTextBrowser).toPlainText()
    assert "Reading the metrics" in text and "SW ratio" in text  # docs/user_guide.md, rendered
    assert dialog.isVisible()
    dialog.close()


def test_shortcut_list_is_built_from_the_actions_and_follows_them(window):
    rows = _rows(window.help.show_shortcuts().findChild(QTableWidget))
    native = QKeySequence.SequenceFormat.NativeText
    assert rows["Train"] == QKeySequence("Ctrl+T").toString(native)
    assert rows["Save session"] == QKeySequence("Ctrl+S").toString(native)
    assert rows["Undo"] == QKeySequence("Ctrl+Z").toString(native)
    assert "F1" in rows["Keyboard shortcuts"]
    every = {a.text().replace("&", "").rstrip("…").strip() for a in window.actions() if not a.shortcut().isEmpty()}
    assert every <= set(rows)  # every action with a key is listed
    window.actions_["train"].setShortcut(QKeySequence("Ctrl+Alt+T"))  # a changed key: the list follows
    rows = _rows(window.help.show_shortcuts().findChild(QTableWidget))
    assert rows["Train"] == QKeySequence("Ctrl+Alt+T").toString(native)
    assert list(window.help.dialogs) == ["shortcuts"]  # reopening replaces the dialog, not a second one


def test_about_names_versions_device_and_licence(window):
    text = window.help.show_about().findChild(QLabel).text()
    for part in (platform.python_version(), PySide6.__version__, pg.__version__, version_of("torch"), "MIT"):
        assert part in text
    assert version_of("torch") != "not installed"
    assert window.status_labels["device"].text() in text


def test_examples_menu_opens_each_bundled_file(qtbot, window):
    menu = window.help.examples_menu
    files = sorted(p.name for p in EXAMPLES_DIR.iterdir() if p.suffix != ".py")
    assert sorted(a.text() for a in menu.actions()) == files
    assert all(a.toolTip() for a in menu.actions())
    file_menu = find_menu(window.menuBar(), "&File")
    assert menu.menuAction() in file_menu.actions()
    galaxy = next(a for a in menu.actions() if a.text() == "galaxy.csv")
    galaxy.trigger()
    wait(qtbot, lambda: window.session.data.name == "galaxy")
    assert window.session.data.kind == "file" and len(window.session.points) > 100
