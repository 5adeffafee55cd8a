"""Ground truth beside predictions: finds the folder's annotations in the background, draws them as
their own layer, and keeps the current image's matches (TP / FP / missed) and AP up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Generator

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from fashionviewer.core.data.groundtruth import GroundTruth, Match, find_ground_truth, match_image
from fashionviewer.core.data.overlay import PredictionRasters, class_color, composite
from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.qt.canvas import BoxSpec
from fashionviewer.qt.workers import start_worker


def _find(folder: Path) -> Generator[None, None, GroundTruth | None]:
    yield None  # a cancel point before the (possibly long) read
    return find_ground_truth(folder)


class GroundTruthController(QObject):
    changed = Signal()  # annotations found/lost, or the current image's match recomputed

    def __init__(self, session: ViewerSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.gt: GroundTruth | None = None
        # the detector's class names (set when a model loads)
        self.model_classes: list[str] | None = None
        self._rasters: dict[str, PredictionRasters] = {}
        self._match: tuple[tuple, Match] | None = None
        # Matching + per-image AP costs tens of ms: recompute once the slider settles.
        self._timer = QTimer(self, singleShot=True, interval=200)
        self._timer.timeout.connect(self._rematch)
        ev = session.events
        ev.folder_changed.connect(self._folder_changed)
        for signal in (
            ev.current_changed,
            ev.threshold_changed,
            ev.classes_changed,
            ev.prediction_added,
            ev.model_changed,
        ):
            signal.connect(lambda *a: self._timer.start())

    def _folder_changed(self) -> None:
        self.gt, self._rasters, self._match = None, {}, None
        self.changed.emit()
        if self.session.folder is not None:
            folder = self.session.folder
            start_worker(_find, folder, on_return=lambda gt, f=folder: self._found(f, gt))

    def _found(self, folder: Path, gt: GroundTruth | None) -> None:
        if folder == self.session.folder:
            self.gt = gt
            self._rematch()

    def annotations(self, path: Path) -> list[Any] | None:
        if self.gt is None:
            return None
        try:
            return self.gt.for_image(path)
        except Exception:  # noqa: BLE001 - a broken annotation file must not break viewing
            return None

    def layer(self, path: Path) -> tuple[np.ndarray | None, list[BoxSpec]]:
        """RGBA layer (faint fill, outlines) and dashed captioned boxes of the image's annotations."""
        gt = self.annotations(path)
        if not gt:
            return None, []
        rasters = self._rasters.get(str(path))
        if rasters is None:
            h, w = gt[0].rle["size"]
            rasters = self._rasters[str(path)] = PredictionRasters(gt, int(h), int(w))
        indices = list(range(len(gt)))
        missed = (
            set(self._match[1].missed) if self._match and self._match[0][0] == str(path) else set()
        )
        specs = [
            BoxSpec(
                g.box,
                (230, 60, 60) if j in missed else class_color(g.label),
                f"GT {g.class_name}" + (" (missed)" if j in missed else ""),
                dashed=True,
            )
            for j, g in enumerate(gt)
        ]
        return composite(rasters, indices, opacity=0.18), specs

    def _key(self) -> tuple:
        s = self.session
        return (str(s.current), s.model_key, round(s.threshold, 4), tuple(sorted(s.hidden_classes)))

    def _rematch(self) -> None:
        s = self.session
        prediction = s.prediction()
        gt = self.annotations(s.current) if s.current is not None else None
        if prediction is None or gt is None:
            self._match = None
        elif self._match is None or self._match[0] != self._key():
            self._match = (
                self._key(),
                match_image(
                    prediction,
                    s.visible_indices(),
                    gt,
                    0.5,
                    self.model_classes,
                    self.gt.class_names if self.gt else None,
                ),
            )
        self.changed.emit()

    def summary(self) -> str | None:
        """HTML for the details panel, or None when the folder has no annotations."""
        if self.gt is None:
            return None
        s = self.session
        gt = self.annotations(s.current) if s.current is not None else None
        if gt is None:
            return f"{self.gt.describe()}<br>This image is not annotated."
        text = f"{self.gt.kind}: {len(gt)} annotated instances"
        if self._match is None or self._match[0] != self._key():
            return text + ("<br>matching…" if s.prediction() is not None else "")
        m = self._match[1]
        text += (
            f"<br>IoU ≥ 0.5 at score ≥ {s.threshold:.2f}: <b>{len(m.pairs)} TP</b>, "
            f"<b>{len(m.false_positives)} FP</b>, <b>{len(m.missed)} missed</b>"
        )
        if m.ap is not None:
            text += f"<br>Mask AP {max(m.ap, 0.0):.3f} ({m.ap_note})"
        elif m.ap_note:
            text += f"<br><i>{m.ap_note}</i>"
        if m.missed:
            names = ", ".join(sorted({gt[j].class_name for j in m.missed}))
            text += f"<br>Missed: {names}"
        return text
