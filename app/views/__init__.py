"""Views: pyqtgraph widgets that draw session frames (`plot2d.Plot2D`, `loss_view.LossView`).

Kept import-free so the pure helpers (`geometry`, `colors`) load without Qt.
"""
