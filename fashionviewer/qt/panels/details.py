"""Details of the selected instance (class, score, area, box, the CNN's top-3 on the exact 28×28 input
it saw, and whether the two models disagree) or, with nothing selected, of the whole picture.

The CNN's 28×28 input is prepared from the full-resolution photo, which takes seconds for a 48-megapixel
one, so it is made in a worker and shown when it arrives (and kept for the next refresh)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Generator

import numpy as np
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from fashionviewer.core.data.classmap import disagreement, fmnist_classes_for
from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.qt.workers import GeneratorWorker, start_worker

InputKey = tuple[Any, str, Any, int]  # (image path, model, prediction's id, instance index or -1)


def _make_input(
    cnn_input: Callable[[int | None], np.ndarray | None],
    index: int | None,
    still_wanted: Callable[[], bool],
) -> Generator[None, None, np.ndarray | None]:
    """Worker body: the CNN's input, or None when the user moved on before or while it was made."""
    if not still_wanted():
        return None
    picture = cnn_input(index)
    yield  # a cancel here drops the result
    return picture if still_wanted() else None


def top_k(classes: list[str], probs: list[float], k: int = 3) -> list[tuple[str, float]]:
    order = np.argsort(-np.asarray(probs, float))[:k]
    return [(classes[i], float(probs[i])) for i in order]


def _bars(rows: list[tuple[str, float]]) -> str:
    cells = "".join(
        f"<tr><td>{name}</td><td><div style='background:#4a90d9;width:{int(p * 120)}px'>&nbsp;</div></td>"
        f"<td align='right'>{p:.1%}</td></tr>"
        for name, p in rows
    )
    return f"<table cellspacing='2'>{cells}</table>"


class DetailsPanel(QWidget):
    def __init__(
        self,
        session: ViewerSession,
        cnn_input: Callable[[int | None], np.ndarray | None] | None = None,
        classes: Callable[[], list[str]] | None = None,
        ground_truth_summary: Callable[[], str | None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.cnn_input = cnn_input  # index (None: whole picture) -> the CNN's 28×28 uint8 input
        self.classes = classes  # the CNN's class names
        self.ground_truth_summary = ground_truth_summary
        # CNN inputs made, newest last
        self._inputs: OrderedDict[InputKey, np.ndarray] = OrderedDict()
        self._wanted: InputKey | None = None  # the input the panel shows now
        self._maker: GeneratorWorker | None = None  # at most one at a time: each may take seconds
        self._making: InputKey | None = None
        self.title = QLabel(objectName="detailsTitle")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.info = QLabel(wordWrap=True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.crop = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.crop.setFixedSize(28 * 4 + 4, 28 * 4 + 4)
        self.crop.setToolTip(
            "The exact 28×28 picture the Fashion-MNIST CNN classified (shown 4× enlarged)"
        )
        self.flag = QLabel(wordWrap=True, objectName="disagreeFlag")
        self.gt = QLabel(wordWrap=True)
        self.gt.setTextFormat(Qt.TextFormat.RichText)
        self.gt_box = QGroupBox("Ground truth")
        QVBoxLayout(self.gt_box).addWidget(self.gt)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        for widget in (self.title, self.info, self.crop, self.flag):
            layout.addWidget(widget)
        layout.addWidget(self.gt_box)
        layout.addStretch(1)
        ev = session.events
        for signal in (
            ev.selection_changed,
            ev.current_changed,
            ev.prediction_added,
            ev.threshold_changed,
            ev.classes_changed,
            ev.model_changed,
            ev.frames_known,
        ):
            signal.connect(lambda *a: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        s = self.session
        self._wanted = None  # set again below when a CNN input is to be shown
        self.flag.hide()
        self.crop.clear()
        self.crop.hide()  # shown again only when there is a CNN input to show
        prediction = s.prediction()
        inst = s.selected_instance()
        if inst is not None:
            self._show_instance(s.selected, inst)
        elif prediction is not None:
            shown, total = s.counts()
            self.title.setText("<b>Whole picture</b>")
            text = f"{shown} of {total} instances shown. Click an instance to inspect it."
            scores = s.image_scores()
            if scores is not None and self.classes is not None:
                single = shown <= 1
                text += (
                    "<br><br><b>Fashion-MNIST CNN on the whole picture</b>"
                    + (" (single-product image)" if single else "")
                    + _bars(top_k(self.classes(), scores))
                )
                self._show_input(None)
            self.info.setText(text)
        else:
            self.title.setText("<b>No prediction</b>")
            self.info.setText(
                "Predictions appear here as the model runs." if s.current is not None else ""
            )
        frames = s.frames.get(str(s.current)) if s.current is not None else None
        if frames and inst is None:
            self.info.setText(
                f"Animated or multi-page file: showing and predicting the first of {frames} frames."
                "<br><br>" + self.info.text()
            )
        summary = self.ground_truth_summary() if self.ground_truth_summary else None
        self.gt_box.setVisible(bool(summary))
        self.gt.setText(summary or "")

    def _show_instance(self, index: int | None, inst: Any) -> None:
        x0, y0, x1, y1 = inst.box
        self.title.setText(f"<b>#{(index or 0) + 1} {inst.class_name}</b>")
        score = f"score <b>{inst.score:.3f}</b>"
        if getattr(inst, "detector_score", None) is not None:  # re-scored: say from what
            score += (
                f" (detector {inst.detector_score:.3f}, weighted by the re-scoring CNN's probability of "
                f"{inst.class_name})"
            )
        rows = [
            score,
            f"area {int(inst.area):,} px",
            f"box x {x0:.0f}–{x1:.0f}, y {y0:.0f}–{y1:.0f} ({x1 - x0:.0f}×{y1 - y0:.0f})",
        ]
        cnn = inst.classifier
        if cnn:
            ranked = top_k(list(cnn["classes"]), list(cnn["probs"]))
            rows.append(
                f"<br><b>Fashion-MNIST CNN ({cnn.get('model') or 'classifier'}) on the masked crop</b>"
                + _bars(ranked)
            )
            verdict = disagreement(inst.class_name, ranked[0][0])
            if verdict is True:
                expected = " or ".join(fmnist_classes_for(inst.class_name))
                self.flag.setText(
                    f"⚠ The models disagree: the detector says {inst.class_name} "
                    f"(Fashion-MNIST: {expected}), the CNN says {ranked[0][0]}."
                )
                self.flag.setStyleSheet("color: #e0a030; font-weight: bold;")
                self.flag.show()
            elif verdict is False:
                self.flag.setText("✓ Both models agree.")
                self.flag.setStyleSheet("color: #4caf50;")
                self.flag.show()
            self._show_input(index)
        self.info.setText("<br>".join(rows))

    def _input_key(self, index: int | None) -> InputKey:
        s = self.session
        return (s.current, s.model_key, id(s.prediction()), -1 if index is None else index)

    def _show_input(self, index: int | None) -> None:
        if self.cnn_input is None:
            return
        key = self._wanted = self._input_key(index)
        picture = self._inputs.get(key)
        if picture is not None:
            self._set_input(picture)
        elif self._maker is None:
            self._start_maker(key, index)

    def _start_maker(self, key: InputKey, index: int | None) -> None:
        assert self.cnn_input is not None
        self._making = key
        self._maker = start_worker(
            _make_input,
            self.cnn_input,
            index,
            lambda: self._wanted == key,
            on_return=lambda picture: self._input_made(key, picture),
            on_finish=self._maker_finished,
        )

    def _input_made(self, key: InputKey, picture: np.ndarray | None) -> None:
        if picture is None:
            return  # not made: the full pixels are not decoded yet, or the user moved on
        if not shiboken6.isValid(self.crop):
            return  # the window closed while the worker ran
        self._inputs[key] = picture
        while len(self._inputs) > 64:
            self._inputs.popitem(last=False)
        if key == self._wanted:
            self._set_input(picture)

    def _maker_finished(self) -> None:
        self._maker, made = None, self._making
        if not shiboken6.isValid(self.crop):
            return
        wanted = self._wanted
        # asked for while it ran
        if wanted is not None and wanted != made and wanted not in self._inputs:
            self._start_maker(wanted, None if wanted[3] < 0 else wanted[3])

    def _set_input(self, picture: np.ndarray) -> None:
        picture = np.ascontiguousarray(picture, np.uint8)
        qimage = QImage(picture.data, 28, 28, 28, QImage.Format.Format_Grayscale8).copy()
        self.crop.show()
        self.crop.setPixmap(
            QPixmap.fromImage(qimage).scaled(
                112,
                112,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        )
