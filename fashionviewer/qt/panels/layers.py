"""Layer toggles, mask opacity and the confidence threshold ("N of M instances shown")."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from fashionviewer.core.viewer.session import LAYERS, ViewerSession

# Layer -> (label, single-key shortcut); the window registers the same keys as actions.
LAYER_KEYS: dict[str, tuple[str, str]] = {
    "masks": ("Masks", "M"),
    "outlines": ("Outlines", "O"),
    "boxes": ("Boxes", "B"),
    "labels": ("Labels", "L"),
    "scores": ("Scores", "S"),
    "ground_truth": ("Ground truth", "G"),
    "annotations": ("Annotations", "Shift+A"),
}


class LayersPanel(QWidget):
    def __init__(self, session: ViewerSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.checks: dict[str, QCheckBox] = {}
        layers_box = QGroupBox("Show")
        grid = QVBoxLayout(layers_box)
        for name in LAYERS:
            label, key = LAYER_KEYS[name]
            check = QCheckBox(f"{label}  ({key})")
            check.setChecked(session.layers[name])
            check.toggled.connect(lambda on, n=name: session.set_layer(n, on))
            self.checks[name] = check
            grid.addWidget(check)

        self.opacity = QSlider(
            Qt.Orientation.Horizontal, minimum=0, maximum=100, value=int(session.opacity * 100)
        )
        self.opacity.valueChanged.connect(lambda v: session.set_opacity(v / 100))
        self.slider = QSlider(
            Qt.Orientation.Horizontal, minimum=0, maximum=100, value=int(session.threshold * 100)
        )
        self.spin = QDoubleSpinBox(
            minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, value=session.threshold
        )
        self.spin.setKeyboardTracking(False)
        self.shown = QLabel("no predictions yet")
        self.shown.setObjectName("shownLabel")
        # Debounce: the slider filters cached predictions; coalesce a drag into ~30 updates/s.
        self._debounce = QTimer(self, singleShot=True, interval=30)
        self._debounce.timeout.connect(lambda: session.set_threshold(self.slider.value() / 100))
        self.slider.valueChanged.connect(self._slider_moved)
        self.spin.valueChanged.connect(lambda v: session.set_threshold(v))

        thr = QHBoxLayout()
        thr.addWidget(self.slider, 1)
        thr.addWidget(self.spin)
        form_box = QGroupBox("Display")
        form = QFormLayout(form_box)
        form.addRow("Mask opacity", self.opacity)
        form.addRow("Min. score", thr)
        form.addRow(self.shown)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(layers_box)
        layout.addWidget(form_box)
        layout.addStretch(1)

        ev = session.events
        ev.layers_changed.connect(self._layer_changed)
        ev.threshold_changed.connect(self._threshold_changed)
        for signal in (
            ev.threshold_changed,
            ev.classes_changed,
            ev.current_changed,
            ev.prediction_added,
            ev.model_changed,
        ):
            signal.connect(lambda *a: self.update_counts())

    def _slider_moved(self, value: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(value / 100)
        self.spin.blockSignals(False)
        self._debounce.start()

    def _threshold_changed(self, value: float) -> None:
        for widget, v in ((self.slider, int(round(value * 100))), (self.spin, value)):
            widget.blockSignals(True)
            widget.setValue(v)
            widget.blockSignals(False)

    def _layer_changed(self, name: str, visible: bool) -> None:
        check = self.checks[name]
        if check.isChecked() != visible:
            check.blockSignals(True)
            check.setChecked(visible)
            check.blockSignals(False)

    def update_counts(self) -> None:
        s = self.session
        if s.current is None:
            self.shown.setText("no image")
        elif s.prediction() is None:
            self.shown.setText(
                "not predicted yet" if str(s.current) not in s.errors else "unreadable image"
            )
        else:
            shown, total = s.counts()
            self.shown.setText(f"{shown} of {total} instances shown")
