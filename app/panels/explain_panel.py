"""Explain panel: the selected loss and sampler written as the math, with their papers.

The text lives in `sgm_core.explain`, keyed by registry name; this widget only renders it (a
QTextBrowser: HTML with Unicode math) and follows the session's run and sampler settings.
"""

from __future__ import annotations

from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from sgm_core.explain import explanation_html


class ExplainPanel(QWidget):
    """Shows `explanation_html` for the session's loss and sampler, updated when either changes."""

    def __init__(self, session, parent: QWidget | None = None) -> None:  # noqa: ANN001 - app.session.Session
        super().__init__(parent)
        self.session = session
        self.browser = QTextBrowser()
        self.browser.setOpenLinks(False)
        self.browser.setToolTip("The selected loss and sampler as the math, and the paper each comes from")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.browser)
        self.shown: tuple[str, str] | None = None  # (loss, sampler) on screen
        session.config_changed.connect(self._on_config_changed)
        self._on_config_changed()

    def _on_config_changed(self) -> None:
        names = (self.session.run_config.loss.name, self.session.sampler_config.name)
        if names != self.shown:
            self.shown = names
            self.browser.setHtml(explanation_html(*names))
