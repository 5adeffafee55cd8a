"""Annotation mode: correct the predictions of a folder into annotations, keyboard first.

The Qt face of ``core.viewer.annotation_state.AnnotationState`` (selection, tool, clicks, strokes and the
accept / reject rules live there; the data, undo/redo and the autosave in its ``AnnotationEditor``). It builds
the Annotate toolbar and menu (every action with its shortcut), the "Annotations" layer on the canvas, the
drawing tools (``tools.CanvasTools``), the class picker, the browser's marks, and the offer to load a model
trained on the annotations. It reaches the application only through ``host.AnnotationHost``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QMenu, QMessageBox, QSpinBox, QToolBar, QWidget

from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME, Annotation
from fashionviewer.core.viewer.annotating import AnnotationEditor
from fashionviewer.core.viewer.annotation_state import AnnotationState
from fashionviewer.core.viewer.annotation_tools import TOGGLE_KEY, Tool, shortcut_rows
from fashionviewer.core.viewer.session import ViewerSession
from fashionviewer.core.viewer.training import fine_tune_checkpoint, fine_tune_trainer
from fashionviewer.qt.annotation.class_picker import pick_class
from fashionviewer.qt.annotation.drawing import Drawing
from fashionviewer.qt.annotation.host import AnnotationHost
from fashionviewer.qt.annotation.layer import AnnotationLayer
from fashionviewer.qt.annotation.read_only import enable_actions, problem_text
from fashionviewer.qt.annotation.tools import CanvasTools
from fashionviewer.qt.dialogs.annotations_io import open_annotations_dialog as annotations_dialog


@dataclass(frozen=True)
class Command:
    """An Annotate menu action after the tools (enabled in annotation mode only unless ``always``)."""

    name: str
    text: str
    keys: tuple[str, ...]
    run: Callable[[], Any]
    always: bool = False  # enabled outside annotation mode too (e.g. a file import)


class _Bridge(QObject):
    """Carries the editor's saved/error callbacks (maybe from its autosave thread) to the GUI thread."""

    saved = Signal(object)
    error = Signal(str)


class AnnotationMode(QObject):
    redrawn = Signal()  # the annotation layer was drawn again (tests wait on it)

    def __init__(
        self, session: ViewerSession, host: AnnotationHost, parent: QWidget, menu: QMenu
    ) -> None:
        """``parent``: the widget whose shortcuts the mode's keys take over while it is on (closing it saves);
        ``menu``: the Annotate menu to fill. The caller places ``toolbar`` and ``problem_label``."""
        super().__init__(parent)
        self.session, self.host, self.parent_widget = session, host, parent
        self.canvas = host.canvas.canvas
        self.state = AnnotationState(
            session, host.image_size, self._model_classes, self._model_label
        )
        self._suspended: dict[QAction, list[QKeySequence]] = {}
        self._bridge = _Bridge(self)
        self._bridge.saved.connect(
            lambda path: host.show_status(f"Annotations saved: {path}", 4000)
        )
        self._bridge.error.connect(self.show_error)
        self.layer = AnnotationLayer(self.canvas, self.state.colour_label)
        self.tools = CanvasTools(self.canvas)
        self._build_widgets()
        self._fill_menu(menu)
        self.drawing = Drawing(
            self.state,
            self.tools,
            self.layer,
            host,
            self.status,
            self.current_class,
            self.redraw,
            self,
        )
        ev = self.state.events
        ev.editor_changed.connect(self._editor_changed)
        ev.annotations_changed.connect(self._annotations_changed)
        ev.selection_changed.connect(lambda _id: self.redraw())
        ev.tool_changed.connect(self._tool_changed)
        ev.radius_changed.connect(self._radius_changed)
        ev.active_changed.connect(self._active_changed)
        ev.message.connect(host.show_status)
        ev.error.connect(self.show_error)
        session.events.current_changed.connect(lambda _p: self._image_changed())
        session.events.layers_changed.connect(
            lambda name, _v: name == "annotations" and self.redraw()
        )
        host.images.image_loaded.connect(lambda _p: self.redraw())
        host.models_loaded.connect(lambda _m: self._seed_categories())
        host.training.finished.connect(self._training_finished)
        self.canvas.clicked.connect(self._clicked)
        host.browser.marks = self.state.mark
        parent.installEventFilter(self)  # flush unsaved edits when the window closes

    # ----- what the state reads through the host ----------------------------------------------
    @property
    def editor(self) -> AnnotationEditor | None:
        return self.state.editor

    @property
    def selected(self) -> int | None:
        return self.state.selected

    @property
    def active(self) -> bool:
        return self.state.active

    def _model_classes(self) -> list[str]:
        predictor = self.host.predictor()
        return list(predictor.class_names) if predictor is not None else []

    def _model_label(self) -> str | None:
        models = self.host.models()
        return models.label if models is not None else None

    # ----- toolbar, menu, shortcuts -----------------------------------------------------------
    def commands(self) -> tuple[Command, ...]:
        """The Annotate menu's actions after the tools, in menu order: a new action is one line here."""
        s = self.state
        return (
            Command("smaller", "Smaller Brush", ("[",), lambda: s.resize_brush(larger=False)),
            Command("larger", "Larger Brush", ("]",), lambda: s.resize_brush(larger=True)),
            Command(
                "accept", "Accept Selected Prediction", ("Return", "Enter"), self.accept_selected
            ),
            Command(
                "accept_all",
                "Accept All Above the Threshold",
                ("Shift+Return", "Shift+Enter"),
                s.accept_all,
            ),
            Command(
                "delete",
                "Delete Annotation / Reject Prediction",
                ("Delete", "Backspace"),
                self.delete_selected,
            ),
            Command("relabel", "Relabel…", ("L",), self.relabel_selected),
            Command("next", "Next Instance", ("Tab",), lambda: s.step(1)),
            Command("previous", "Previous Instance", ("Shift+Tab", "Backtab"), lambda: s.step(-1)),
            Command("done", "Mark Image Done", ("Ctrl+D",), s.toggle_done),
            Command("undo", "Undo", ("Ctrl+Z",), s.undo),
            Command("redo", "Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), s.redo),
            Command("save", "Save Annotations", ("Ctrl+S",), s.save),
            Command(
                "import",
                "Import Annotations…",
                (),
                lambda: annotations_dialog(s, self.parent_widget, False),
                True,
            ),
            Command(
                "export",
                "Export Annotations…",
                (),
                lambda: annotations_dialog(s, self.parent_widget, True),
                True,
            ),
        )

    def shortcuts(self) -> list[tuple[str, str]]:
        """(what, keys) of the toggle, every tool and every command: the Help menu's list."""
        return shortcut_rows([(c.text, c.keys) for c in self.commands() if c.keys])

    def _build_widgets(self) -> None:
        w = self.parent_widget
        self.toolbar = QToolBar("Annotate", objectName="annotateToolbar")
        self.toggle_action = QAction(
            "Annotation Mode", w, checkable=True, shortcut=QKeySequence(TOGGLE_KEY)
        )
        self.toggle_action.setToolTip(
            f"Annotation mode ({TOGGLE_KEY}): correct predictions into annotations"
        )
        self.toggle_action.toggled.connect(self.set_active)
        w.addAction(self.toggle_action)
        self.toolbar.addAction(self.toggle_action)
        self.actions: dict[str, QAction] = {}
        self._always: set[QAction] = set()
        for tool in Tool:
            self._add_action(
                tool.value, tool.text, tool.keys, lambda t=tool: self.set_tool(t), checkable=True
            )
            self.actions[tool.value].setIconText(tool.label)  # short on the toolbar
            self.toolbar.addAction(self.actions[tool.value])
        for command in self.commands():
            self._add_action(
                command.name, command.text, command.keys, command.run, always=command.always
            )
        self.actions[Tool.SELECT.value].setChecked(True)
        self.class_box = QComboBox(editable=True, minimumContentsLength=14, enabled=False)
        self.class_box.setToolTip("Class of newly drawn instances (type to search)")
        self.class_box.completer().setFilterMode(Qt.MatchFlag.MatchContains)
        self.class_box.completer().setCompletionMode(
            self.class_box.completer().CompletionMode.PopupCompletion
        )
        self.radius_box = QSpinBox(
            minimum=1, maximum=200, value=int(self.state.radius), suffix=" px", enabled=False
        )
        self.radius_box.setToolTip("Brush radius ([ and ])")
        self.radius_box.valueChanged.connect(self.state.set_radius)
        self.status = QLabel()
        for label, widget in (("New:", self.class_box), ("Brush:", self.radius_box)):
            self.toolbar.addWidget(QLabel(f" {label} "))
            self.toolbar.addWidget(widget)
        self.toolbar.addWidget(self.status)
        # A bad record in the annotation file: one line, kept in the status bar while the folder is open.
        self.problem_label = QLabel(objectName="annotationProblem")
        self.problem_label.setStyleSheet(
            "QLabel { background: #7a2e2e; color: white; padding: 2px 6px; }"
        )
        self.problem_label.hide()

    def _add_action(
        self,
        name: str,
        text: str,
        keys: tuple[str, ...],
        run: Callable[[], Any],
        checkable: bool = False,
        always: bool = False,
    ) -> None:
        action = QAction(text, self.parent_widget, checkable=checkable, enabled=always)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setToolTip(f"{text} ({keys[0]})" if keys else text)
        action.triggered.connect(lambda *_a: (self.active or always) and run())
        if always:
            self._always.add(action)
        self.parent_widget.addAction(action)  # shortcuts work whichever dock has focus
        self.actions[name] = action

    def _fill_menu(self, menu: QMenu) -> None:
        """The Annotate menu: the toggle, then every tool and command with its shortcut."""
        menu.addAction(self.toggle_action)
        menu.addSeparator()
        for action in self.actions.values():
            menu.addAction(action)

    def set_active(self, on: bool) -> None:
        """Enter or leave annotation mode: the mode's keys replace the window's where they collide (B, L, Esc)."""
        if on != self.state.active:
            self.state.set_active(on)

    def _active_changed(self, on: bool) -> None:
        if self.toggle_action.isChecked() != on:
            self.toggle_action.setChecked(on)
        mine = {k.toString() for action in self.actions.values() for k in action.shortcuts()}
        if on:
            for action in self.parent_widget.actions():
                if action in self.actions.values() or action is self.toggle_action:
                    continue
                keys = action.shortcuts()
                if any(k.toString() in mine for k in keys):
                    self._suspended[action] = keys
                    action.setShortcuts([k for k in keys if k.toString() not in mine])
            self._update_classes()
            self.canvas.setFocus()  # single-key shortcuts must not type into a text field
        else:
            for action, keys in self._suspended.items():
                action.setShortcuts(keys)
            self._suspended.clear()
        self._enable()
        self.redraw()

    def _enable(self) -> None:
        """The actions for the mode and the file: a read-only file leaves only selecting and inspecting."""
        widgets = (self.class_box, self.radius_box)
        enable_actions(self.actions, self._always, widgets, self.active, self.state.read_only)

    def trigger(self, name: str) -> None:
        """Run an action by name (what its shortcut and menu entry do)."""
        self.actions[name].trigger()

    def set_tool(self, tool: Tool | str) -> None:
        if Tool(tool) is Tool.SELECT and self.tools.cancel():
            self._check(self.state.tool)
            return  # Escape first drops a half-drawn box or polygon
        self.state.set_tool(tool)

    def _tool_changed(self, tool: Tool) -> None:
        self.tools.set_tool(tool)
        self._check(tool)

    def _check(self, tool: Tool) -> None:
        for t in Tool:
            self.actions[t.value].setChecked(t is tool)

    def _radius_changed(self, radius: float) -> None:
        self.tools.set_radius(radius)
        self.radius_box.setValue(int(round(radius)))

    # ----- editor ----------------------------------------------------------------------------
    def _editor_changed(self, editor: AnnotationEditor | None) -> None:
        if editor is None:  # another folder
            self.drawing.reset()
            self.problem_label.hide()
            self.layer.forget()
            return
        editor.events.saved.connect(self._bridge.saved.emit)
        editor.events.error.connect(self._bridge.error.emit)
        self.problem_label.setText(problem_text(editor) if editor.problems else "")
        self.problem_label.setToolTip("\n".join(editor.problems))
        self.problem_label.setVisible(bool(editor.problems))
        self._enable()  # a converted file is writable again
        self.host.browser.refresh_marks()
        self._update_classes()

    def _seed_categories(self) -> None:
        self.state.seed_categories()
        self._update_classes()

    def class_names(self) -> list[str]:
        return self.state.class_names()

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

    def show_error(self, message: str) -> None:
        self.host.show_status(message, 30000)
        self.host.canvas.show_notice(message)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if obj is self.parent_widget and event.type() == QEvent.Type.Close:
            self.state.flush()
        return False

    # ----- the current image -----------------------------------------------------------------
    def file_name(self, path: Path | None = None) -> str | None:
        return self.state.file_name(path)

    def image_size(self) -> tuple[int, int] | None:
        return self.host.image_size()

    def annotations(self) -> list[Annotation]:
        return self.state.annotations()

    def _image_changed(self) -> None:
        self.drawing.reset()
        self.tools.cancel()
        self.layer.forget()
        self.layer.clear()

    def _annotations_changed(self, file_name: str) -> None:
        folder = self.session.folder
        self.host.browser.refresh_marks(folder / file_name if folder is not None else None)
        if file_name == self.file_name():
            self.redraw()

    def redraw(self) -> None:
        size, editor = self.image_size(), self.state.editor
        if size is None or editor is None or not self.session.layers["annotations"]:
            self.layer.clear()
            self.redrawn.emit()
            return
        annotations = self.annotations()
        self.layer.render(
            annotations,
            editor.aset.category_name,
            size[1],
            size[0],
            self.state.selected,
            captions=self.session.layers["labels"],
        )
        done = " — done" if self.state.is_done() else ""
        self.status.setText(f"  {len(annotations)} annotated{done}  ")
        self.redrawn.emit()

    def _clicked(self, x: int, y: int) -> None:
        if (
            self.state.tool is not Tool.SELECT
            or self.editor is None
            or not self.session.layers["annotations"]
        ):
            return
        hit = self.layer.annotation_at(x, y)
        if hit is not None:
            self.state.select(hit)
        elif self.state.selected is not None:
            self.state.select(None)

    # ----- actions that also touch the drawing tools or ask --------------------------------------
    def accept_selected(self) -> int | None:
        if self.state.tool is Tool.POLYGON and self.tools.close_polygon():
            return None  # Enter first closes the polygon being drawn
        return self.state.accept_selected()

    def delete_selected(self) -> None:
        if self.state.tool is Tool.POLYGON and self.tools.undo_vertex():
            return  # Delete first drops the polygon's last vertex
        self.state.delete_selected()

    def relabel_selected(self, class_name: str | None = None) -> None:
        """L: the class picker for the selected annotation (with nothing selected: the class of new ones)."""
        if class_name is None:
            current = self.state.selected_class() or self.current_class()
            class_name = pick_class(self.class_names(), current, self.parent_widget)
            if not class_name:
                return
        self.state.relabel_selected(class_name)
        self.class_box.setCurrentText(class_name)
        self._update_classes()

    # ----- retraining ------------------------------------------------------------------------
    def training_options(self, trainer: str = "maskrcnn") -> dict[str, Any]:
        """What the Train dialog offers from here: this folder's annotations, and the loaded model when its
        family declares that ``trainer`` fine-tunes it (``core.viewer.training.fine_tune_checkpoint``)."""
        folder = self.session.folder
        self.state.flush()  # the trainer reads the file
        has_file = folder is not None and (folder / DEFAULT_FILE_NAME).is_file()
        predictor = self.host.predictor()
        init = (
            fine_tune_checkpoint(
                trainer, predictor.family, predictor.capabilities, predictor.weights_path
            )
            if predictor is not None
            else ""
        )
        return {"annotations": str(folder) if has_file else "", "init_from": init}

    def fine_tune(self, train: Callable[[str], None]) -> None:
        """Train ▸ Fine-tune the Loaded Model…: the Train dialog of the trainer the loaded model's family declares,
        set to this folder's annotations (or one line saying what is missing)."""
        predictor = self.host.predictor()
        trainer = (
            fine_tune_trainer(predictor.family, predictor.capabilities)
            if predictor is not None
            else None
        )
        folder = self.session.folder
        if trainer is None or folder is None or not (folder / DEFAULT_FILE_NAME).is_file():
            why = (
                "load a model first"
                if predictor is None
                else f"a {predictor.family} model cannot be fine-tuned here"
                if trainer is None
                else "annotate some images of this folder first (Annotate ▸ Annotation Mode)"
            )
            QMessageBox.information(
                self.parent_widget, "Fine-tune", f"Nothing to fine-tune yet: {why}."
            )
            return
        train(trainer)

    def _training_finished(self, status: str) -> None:
        panel = self.host.training
        request = panel.request
        if (
            status != "completed"
            or request is None
            or request.dataset != "annotations"
            or not panel.progress.checkpoint
        ):
            return
        answer = QMessageBox.question(
            self.parent_widget,
            "Training finished",
            f"Load the model trained on your annotations ({panel.progress.checkpoint}) "
            "and predict the folder again with it?",
        )
        if answer == QMessageBox.StandardButton.Yes:
            panel.load_button.click()


__all__ = ["AnnotationHost", "AnnotationMode", "Command"]
