"""Annotation mode: correct the predictions of a folder into annotations, keyboard first.

The controller between the window and ``core.viewer.annotating.AnnotationEditor`` (which owns the data,
undo/redo and the autosave): it adds the Annotate toolbar and menu (every action with its shortcut), the
"Annotations" layer on the canvas, the drawing tools (``tools.CanvasTools``), the class picker, the
browser's marks, and the offer to load a model trained on the annotations. Box segmentation runs in a
worker thread; a brush stroke is painted into a working mask and committed as one undo step.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QMessageBox, QSpinBox, QToolBar

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME, categories_for
from fashionviewer.core.viewer.annotating import AnnotationEditor
from fashionviewer.qt.annotation.class_picker import pick_class
from fashionviewer.qt.annotation.drawing import Drawing
from fashionviewer.qt.annotation.layer import AnnotationLayer
from fashionviewer.qt.annotation.tools import CanvasTools

if TYPE_CHECKING:
    from fashionviewer.qt.main_window import MainWindow

TOGGLE_KEY = "Ctrl+A"
# (name, menu text, shortcuts): active only in annotation mode; documented in README's shortcut table.
ACTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("select", "Select / Pan Tool", ("Escape",)),
    ("box", "Box Tool (then click + / right-click −)", ("B",)),
    ("polygon", "Polygon Tool", ("P",)),
    ("brush", "Brush", ("R",)),
    ("eraser", "Eraser", ("E",)),
    ("smaller", "Smaller Brush", ("[",)),
    ("larger", "Larger Brush", ("]",)),
    ("accept", "Accept Selected Prediction", ("Return", "Enter")),
    ("accept_all", "Accept All Above the Threshold", ("Shift+Return", "Shift+Enter")),
    ("delete", "Delete Annotation / Reject Prediction", ("Delete", "Backspace")),
    ("relabel", "Relabel…", ("L",)),
    ("next", "Next Instance", ("Tab",)),
    ("previous", "Previous Instance", ("Shift+Tab", "Backtab")),
    ("done", "Mark Image Done", ("Ctrl+D",)),
    ("undo", "Undo", ("Ctrl+Z",)),
    ("redo", "Redo", ("Ctrl+Shift+Z", "Ctrl+Y")),
    ("save", "Save Annotations", ("Ctrl+S",)),
)
TOOL_NAMES = ("select", "box", "polygon", "brush", "eraser")


class _Bridge(QObject):
    """Carries the editor's saved/error callbacks (maybe from its autosave thread) to the GUI thread."""

    saved = Signal(object)
    error = Signal(str)


class AnnotationMode(QObject):
    redrawn = Signal()  # the annotation layer was drawn again (tests wait on it)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window, self.session = window, window.session
        self.canvas = window.canvas_widget.canvas
        self.editor: AnnotationEditor | None = None
        self.active = False
        self.selected: int | None = None  # annotation id
        self._suspended: dict[QAction, list[QKeySequence]] = {}
        self._bridge = _Bridge(self)
        self._bridge.saved.connect(lambda path: window.statusBar().showMessage(f"Annotations saved: {path}", 4000))
        self._bridge.error.connect(self.show_error)
        self.layer = AnnotationLayer(self.canvas, self.colour_label)
        self.tools = CanvasTools(self.canvas)
        self._build_ui()
        ev = self.session.events
        ev.folder_changed.connect(self._folder_changed)
        ev.current_changed.connect(lambda _p: self._image_changed())
        ev.layers_changed.connect(lambda name, _v: name == "annotations" and self.redraw())
        ev.selection_changed.connect(self._prediction_selected)
        ev.prediction_added.connect(self._hide_accepted)
        window.presenter.image_loaded.connect(lambda _p: self.redraw())
        window.prediction.models_loaded.connect(lambda _m: self._seed_categories())
        window.training.finished.connect(self._training_finished)
        self.canvas.clicked.connect(self._clicked)
        self.drawing = Drawing(self)
        window.browser.model.marks = self.mark
        window.installEventFilter(self)  # flush unsaved edits when the window closes

    # ----- toolbar, menu, shortcuts -----------------------------------------------------------
    def _build_ui(self) -> None:
        w = self.window
        self.toolbar = QToolBar("Annotate", objectName="annotateToolbar")
        w.addToolBarBreak()  # a row of its own under the model bar
        w.addToolBar(self.toolbar)
        menu = w.menuBar().addMenu("&Annotate")
        self.toggle_action = QAction("Annotation Mode", w, checkable=True, shortcut=QKeySequence(TOGGLE_KEY))
        self.toggle_action.setToolTip(f"Annotation mode ({TOGGLE_KEY}): correct predictions into annotations")
        self.toggle_action.toggled.connect(self.set_active)
        menu.addAction(self.toggle_action)
        w.addAction(self.toggle_action)
        self.toolbar.addAction(self.toggle_action)
        menu.addSeparator()
        self.actions: dict[str, QAction] = {}
        for name, text, keys in ACTIONS:
            action = QAction(text, w, checkable=name in TOOL_NAMES, enabled=False)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setToolTip(f"{text} ({keys[0]})")
            action.triggered.connect(lambda *_a, n=name: self.trigger(n))
            menu.addAction(action)
            w.addAction(action)
            self.actions[name] = action
            if name in TOOL_NAMES:
                action.setIconText(name.capitalize() if name != "select" else "Select")  # short on the toolbar
                self.toolbar.addAction(action)
        self.actions["select"].setChecked(True)
        self.class_box = QComboBox(editable=True, minimumContentsLength=14, enabled=False)
        self.class_box.setToolTip("Class of newly drawn instances (type to search)")
        self.class_box.completer().setFilterMode(Qt.MatchFlag.MatchContains)
        self.class_box.completer().setCompletionMode(self.class_box.completer().CompletionMode.PopupCompletion)
        self.radius_box = QSpinBox(minimum=1, maximum=200, value=int(self.tools.radius), suffix=" px", enabled=False)
        self.radius_box.setToolTip("Brush radius ([ and ])")
        self.radius_box.valueChanged.connect(self.tools.set_radius)
        self.status = QLabel()
        for label, widget in (("New:", self.class_box), ("Brush:", self.radius_box)):
            self.toolbar.addWidget(QLabel(f" {label} "))
            self.toolbar.addWidget(widget)
        self.toolbar.addWidget(self.status)
        # A bad record in the annotation file: one line, kept in the status bar while the folder is open.
        self.problem_label = QLabel(objectName="annotationProblem")
        self.problem_label.setStyleSheet("QLabel { background: #7a2e2e; color: white; padding: 2px 6px; }")
        self.problem_label.hide()
        w.statusBar().addPermanentWidget(self.problem_label)
        help_menu = w.menuBar().addMenu("&Help")
        help_menu.addAction("Keyboard Shortcuts", self.show_shortcuts)

    def shortcut_text(self) -> str:
        rows = [("Annotation mode", TOGGLE_KEY)] + [(text, " / ".join(keys)) for _n, text, keys in ACTIONS]
        rows += [("Previous / next image", "← / → (A / D)"), ("Zoom to fit / 1:1", "F / 1"),
                 ("Show annotations layer", "Shift+A")]
        return "\n".join(f"{key:<22} {text}" for text, key in rows)

    def show_shortcuts(self) -> None:
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard Shortcuts", self.shortcut_text(), parent=self.window)
        box.setStyleSheet("QLabel { font-family: monospace; }")
        box.open()

    def set_active(self, on: bool) -> None:
        """Enter or leave annotation mode: the mode's keys replace the window's where they collide (B, L, Esc)."""
        if on == self.active:
            return
        self.active = on
        if self.toggle_action.isChecked() != on:
            self.toggle_action.setChecked(on)
        mine = {QKeySequence(k).toString() for _n, _t, keys in ACTIONS for k in keys}
        if on:
            for action in self.window.actions():
                if action in self.actions.values() or action is self.toggle_action:
                    continue
                keys = action.shortcuts()
                if any(k.toString() in mine for k in keys):
                    self._suspended[action] = keys
                    action.setShortcuts([k for k in keys if k.toString() not in mine])
            self._ensure_editor()
            self._update_classes()
            self.canvas.setFocus()  # single-key shortcuts must not type into a text field
        else:
            for action, keys in self._suspended.items():
                action.setShortcuts(keys)
            self._suspended.clear()
            self.tools.set_tool("select")
            self.actions["select"].setChecked(True)
        for action in self.actions.values():
            action.setEnabled(on)
        self.class_box.setEnabled(on)
        self.radius_box.setEnabled(on)
        if on and not self.session.layers["annotations"]:
            self.session.set_layer("annotations", True)
        self.redraw()

    def trigger(self, name: str) -> None:
        """Run an action by name (what its shortcut and menu entry do)."""
        if not self.active:
            return
        if name in TOOL_NAMES:
            self.set_tool(name)
        elif name in ("smaller", "larger"):
            r = self.radius_box.value()
            self.radius_box.setValue(max(1, round(r / 1.25)) if name == "smaller" else max(r + 1, round(r * 1.25)))
        else:
            getattr(self, {"accept": "accept_selected", "accept_all": "accept_all", "delete": "delete_selected",
                           "relabel": "relabel_selected", "next": "next_instance", "previous": "previous_instance",
                           "done": "toggle_done", "undo": "undo", "redo": "redo", "save": "save"}[name])()

    def set_tool(self, tool: str) -> None:
        if tool == "select" and self.tools.cancel():
            return  # Escape first drops a half-drawn box or polygon
        if tool == "select" and self.tools.tool == "select":
            self.select(None)
            self.session.select(None)
        self.tools.set_tool(tool)
        if tool != "box":
            self.drawing.refine = None
        for name in TOOL_NAMES:
            self.actions[name].setChecked(name == tool)

    # ----- editor ----------------------------------------------------------------------------
    def _folder_changed(self) -> None:
        if self.editor is not None:
            self._flush()
        self.editor, self.selected = None, None
        self.drawing.reset()
        self.problem_label.hide()
        self.layer.forget()
        folder = self.session.folder
        if folder is not None and (self.active or (folder / DEFAULT_FILE_NAME).is_file()):
            self._ensure_editor()

    def _ensure_editor(self) -> AnnotationEditor | None:
        folder = self.session.folder
        if self.editor is not None or folder is None:
            return self.editor
        editor = AnnotationEditor(folder, classes=self._model_classes() or None)
        editor.events.changed.connect(self._annotations_changed)
        editor.events.saved.connect(self._bridge.saved.emit)
        editor.events.error.connect(self._bridge.error.emit)
        self.editor = editor
        if editor.problems:
            more = f" (and {len(editor.problems) - 1} more)" if len(editor.problems) > 1 else ""
            self.problem_label.setText(f"⚠ {editor.problems[0]}{more}. The rest is loaded; the file stays as it "
                                       "is until you edit.")
            self.problem_label.setToolTip("\n".join(editor.problems))
            self.problem_label.show()
        self.window.browser.model.refresh_marks()
        self._update_classes()
        return editor

    def _model_classes(self) -> list[str]:
        models = self.window.prediction.models
        return list(getattr(models.predictor, "class_names", []) or []) if models is not None else []

    def _seed_categories(self) -> None:
        """A file without categories yet takes the loaded model's (with the model's own category ids)."""
        if self.editor is not None and not self.editor.aset.categories and not self.editor.dirty:
            self.editor.aset.categories = categories_for(self._model_classes())
        self._update_classes()

    def class_names(self) -> list[str]:
        names = list(self.editor.class_names) if self.editor is not None else []
        return names + [n for n in self._model_classes() if n not in names]

    def _update_classes(self) -> None:
        current = self.class_box.currentText()
        names = self.class_names()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItems(names)
        self.class_box.setCurrentText(current if current else (names[0] if names else "object"))
        self.class_box.blockSignals(False)

    def current_class(self) -> str:
        return self.class_box.currentText().strip() or "object"

    def _flush(self) -> None:
        try:
            self.editor.flush()  # type: ignore[union-attr]
        except FashionViewerError as exc:
            self.show_error(str(exc))

    def show_error(self, message: str) -> None:
        self.window.statusBar().showMessage(message, 30000)
        self.window.canvas_widget.show_notice(message)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if obj is self.window and event.type() == QEvent.Type.Close and self.editor is not None:
            self._flush()
        return False

    # ----- the current image -----------------------------------------------------------------
    def file_name(self, path: Path | None = None) -> str | None:
        path = self.session.current if path is None else path
        if path is None or self.session.folder is None:
            return None
        try:
            return Path(path).relative_to(self.session.folder).as_posix()
        except ValueError:
            return Path(path).name

    def image_size(self) -> tuple[int, int] | None:
        image = self.window.presenter.current_image()
        return (image.shape[1], image.shape[0]) if image is not None else None

    def annotations(self) -> list[Any]:
        name = self.file_name()
        return self.editor.annotations(name) if self.editor is not None and name else []

    def _image_changed(self) -> None:
        self.selected = None
        self.drawing.reset()
        self.tools.cancel()
        self.layer.forget()
        self.layer.clear()

    def _annotations_changed(self, file_name: str) -> None:
        path = self.session.folder / file_name if self.session.folder is not None else None
        self.window.browser.model.refresh_marks(path)
        if file_name == self.file_name():
            if self.selected is not None and self.selected not in {a.id for a in self.annotations()}:
                self.selected = None
            self.redraw()

    def colour_label(self, name: str, category_id: int) -> int:
        return int(self.session.known_classes.get(name, category_id if category_id > 0 else 1))

    def redraw(self) -> None:
        size = self.image_size()
        if size is None or self.editor is None or not self.session.layers["annotations"]:
            self.layer.clear()
            self.redrawn.emit()
            return
        names = self.editor.aset.category_name
        self.layer.render(self.annotations(), names, size[1], size[0], self.selected,
                          captions=self.session.layers["labels"])
        done = self.editor.image(self.file_name() or "")
        n = len(self.annotations())
        self.status.setText(f"  {n} annotated{' — done' if done is not None and done.done else ''}  ")
        self.redrawn.emit()

    def mark(self, path: Path) -> str:
        """The browser's mark: ✓ done, ✎ annotated, nothing otherwise."""
        if self.editor is None:
            return ""
        rec = self.editor.image(self.file_name(path) or "")
        if rec is None:
            return ""
        return "✓ " if rec.done else ("✎ " if rec.annotations else "")

    # ----- selection ---------------------------------------------------------------------------
    def select(self, annotation_id: int | None) -> None:
        self.selected = annotation_id
        if annotation_id is not None and self.session.selected is not None:
            self.session.select(None)
        self.redraw()

    def _prediction_selected(self, index: int | None) -> None:
        if index is not None and self.selected is not None:
            self.selected = None
            self.redraw()

    def _clicked(self, x: int, y: int) -> None:
        if self.tools.tool != "select" or self.editor is None or not self.session.layers["annotations"]:
            return
        hit = self.layer.annotation_at(x, y)
        if hit is not None:
            self.select(hit)
        elif self.selected is not None:
            self.select(None)

    def _cycle(self) -> list[tuple[str, int]]:
        return [("ann", a.id) for a in self.annotations()] + [("pred", i) for i in self.session.visible_indices()]

    def _step(self, step: int) -> None:
        items = self._cycle()
        if not items:
            return
        current = ("ann", self.selected) if self.selected is not None else ("pred", self.session.selected)
        k = items.index(current) if current in items else (-1 if step > 0 else 0)
        kind, value = items[(k + step) % len(items)]
        if kind == "ann":
            self.select(value)
        else:
            self.select(None)
            self.session.select(value)

    def next_instance(self) -> None:
        self._step(1)

    def previous_instance(self) -> None:
        self._step(-1)

    # ----- predictions -> annotations --------------------------------------------------------
    def _model_name(self) -> str:
        models = self.window.prediction.models
        return models.label if models is not None else self.session.model

    def _drop_predictions(self, indices: list[int]) -> None:
        """Take accepted or rejected predictions off the current image's prediction layer (this session only)."""
        s = self.session
        prediction = s.prediction()
        if prediction is None or s.current is None:
            return
        gone = set(indices)
        s.select(None)
        kept = [inst for i, inst in enumerate(prediction.instances) if i not in gone]
        s.add_prediction(s.current, replace(prediction, instances=kept), s.model)

    def _hide_accepted(self, path: Path, model: str) -> None:
        """A prediction already accepted (unchanged) is not shown again beside its annotation (e.g. reopened)."""
        name = self.file_name(path)
        if self.editor is None or name is None or model != self.session.model:
            return
        names = self.editor.aset.category_name
        accepted = {(str(a.rle.get("counts")), names(a.category_id)) for a in self.editor.annotations(name)
                    if a.source == "predicted"}
        prediction = self.session.prediction(path)
        if not accepted or prediction is None:
            return
        kept = [inst for inst in prediction.instances
                if inst.rle is None or (str(inst.rle.get("counts")), inst.class_name) not in accepted]
        if len(kept) < len(prediction.instances):
            if path == self.session.current:
                self.session.select(None)
            self.session.add_prediction(path, replace(prediction, instances=kept), model)

    def accept_selected(self) -> int | None:
        instance, index = self.session.selected_instance(), self.session.selected
        if self.tools.tool == "polygon" and self.tools.close_polygon():
            return None
        if instance is None or self._ensure_editor() is None:
            self.window.statusBar().showMessage("Select a prediction first (click it, or Tab).", 5000)
            return None
        p = self.session.prediction()
        new = self.editor.accept_prediction(self.file_name(), p.width, p.height, instance, self._model_name())
        self._drop_predictions([index])
        self.select(new)
        return new

    def accept_all(self) -> list[int]:
        """Accept every prediction shown (above the threshold, classes not hidden) as one undo step."""
        s = self.session
        p, indices = s.prediction(), s.visible_indices()
        if p is None or not indices or self._ensure_editor() is None:
            return []
        ids = self.editor.accept_predictions(self.file_name(), p.width, p.height, [p.instances[i] for i in indices],
                                             self._model_name())
        self._drop_predictions(indices)
        self.window.statusBar().showMessage(f"Accepted {len(ids)} predictions.", 5000)
        return ids

    def delete_selected(self) -> None:
        if self.tools.tool == "polygon" and self.tools.undo_vertex():
            return
        if self.selected is not None and self.editor is not None:
            self.editor.delete(self.file_name(), self.selected)
            self.selected = None
            self.redraw()
        elif self.session.selected is not None:  # reject the prediction
            self._drop_predictions([self.session.selected])

    def relabel_selected(self, class_name: str | None = None) -> None:
        """L: the class picker for the selected annotation (with nothing selected: the class of new ones)."""
        if class_name is None:
            current = self.current_class()
            if self.selected is not None and self.editor is not None:
                ann = self.editor.annotation(self.file_name(), self.selected)
                current = self.editor.aset.category_name(ann.category_id)
            class_name = pick_class(self.class_names(), current, self.window)
            if not class_name:
                return
        if self.selected is not None and self.editor is not None:
            self.editor.relabel(self.file_name(), self.selected, class_name)
        self.class_box.setCurrentText(class_name)
        self._update_classes()

    def toggle_done(self) -> None:
        name, size = self.file_name(), self.image_size()
        if name is None or size is None or self._ensure_editor() is None:
            return
        rec = self.editor.image(name)
        self.editor.set_done(name, not (rec is not None and rec.done), size[0], size[1])

    def undo(self) -> None:
        if self.editor is not None and not self.editor.undo():
            self.window.statusBar().showMessage("Nothing to undo.", 3000)

    def redo(self) -> None:
        if self.editor is not None and not self.editor.redo():
            self.window.statusBar().showMessage("Nothing to redo.", 3000)

    def save(self) -> None:
        if self._ensure_editor() is not None:
            try:
                path = self.editor.save()
            except FashionViewerError as exc:
                self.show_error(str(exc))
                return
            self.window.statusBar().showMessage(f"Annotations saved: {path}", 5000)

    # ----- drawing ---------------------------------------------------------------------------
    def add_drawn(self, mask: np.ndarray, origin: dict | None = None) -> int | None:
        size = self.image_size()
        if size is None or not mask.any() or self._ensure_editor() is None:
            return None
        new = self.editor.add(self.file_name(), size[0], size[1], mask, self.current_class(), "drawn", origin)
        self.select(new)
        return new

    # ----- retraining ------------------------------------------------------------------------
    def training_options(self) -> dict[str, Any]:
        """What the Train ▸ Mask R-CNN dialog offers from here: this folder's annotations, the loaded model."""
        folder = self.session.folder
        if self.editor is not None:
            self._flush()  # the trainer reads the file
        has_file = folder is not None and (folder / DEFAULT_FILE_NAME).is_file()
        models = self.window.prediction.models
        predictor = models.predictor if models is not None else None
        card, weights = getattr(predictor, "card", None), getattr(predictor, "weights_path", None)
        fine_tunable = isinstance(card, dict) and str(card.get("architecture", "")).startswith("maskrcnn")
        init = str(weights) if fine_tunable and weights is not None and Path(weights).suffix == ".pt" else ""
        return {"annotations": str(folder) if has_file else "", "init_from": init}

    def _training_finished(self, status: str) -> None:
        panel = self.window.training
        request = panel.request
        if status != "completed" or request is None or request.dataset != "annotations" or not panel.progress.checkpoint:
            return
        answer = QMessageBox.question(self.window, "Training finished",
                                      f"Load the model trained on your annotations ({panel.progress.checkpoint}) "
                                      "and predict the folder again with it?")
        if answer == QMessageBox.StandardButton.Yes:
            panel.load_button.click()
