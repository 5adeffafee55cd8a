"""The window's docks: the image browser on the left; layers, classes and details on the right; the training
panel at the bottom, hidden until a run starts (``qt/training_flow.py`` shows it)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QWidget

Area = Qt.DockWidgetArea


def add_docks(
    window: QMainWindow,
    browser: QWidget,
    layers: QWidget,
    legend: QWidget,
    details: QWidget,
    training: QWidget,
) -> dict[str, QDockWidget]:
    """One dock per panel, by key ("browser", "layers", "legend", "details", "training")."""
    docks: dict[str, QDockWidget] = {}
    for key, title, widget, area in (
        ("browser", "Images", browser, Area.LeftDockWidgetArea),
        ("layers", "Layers", layers, Area.RightDockWidgetArea),
        ("legend", "Classes", legend, Area.RightDockWidgetArea),
        ("details", "Details", details, Area.RightDockWidgetArea),
        ("training", "Training", training, Area.BottomDockWidgetArea),
    ):
        dock = QDockWidget(title, window, objectName=f"{key}Dock")
        if key == "details":  # long texts (top-3, ground truth) scroll instead of being cut
            scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
            scroll.setWidget(widget)
            widget = scroll
        dock.setWidget(widget)
        window.addDockWidget(area, dock)
        docks[key] = dock
    docks["training"].hide()
    window.resizeDocks([docks["browser"], docks["details"]], [280, 330], Qt.Orientation.Horizontal)
    window.resizeDocks(
        [docks["layers"], docks["legend"], docks["details"]],
        [300, 160, 420],
        Qt.Orientation.Vertical,
    )
    return docks
