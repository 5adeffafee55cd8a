"""Annotation interaction state as a plain-Python evented model (no Qt), in the spirit of napari's Labels layer.

``AnnotationState`` sits between a ``ViewerSession`` and the folder's ``AnnotationEditor`` (which owns the
data, undo/redo and the autosave). It holds what the user is doing: whether annotation mode is on, the
current ``Tool``, the selected annotation and the brush radius, and it applies the accept / reject rules.
The instance being drawn (box and click refinement, brush strokes) is its base class
``annotation_drawing.InstanceDrawing``. Every change is announced through a ``Signal`` of
``AnnotationStateEvents``; ``qt/annotation/`` only draws and forwards input.

A read-only editor (another program's file at the project path, see ``annotating``) still opens the mode:
its instances are shown and can be selected and stepped through, but every edit (a drawing tool, accept,
reject, delete, relabel, done, undo, redo, save) is refused with the editor's one line on ``error``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME, Annotation, categories_for
from fashionviewer.core.viewer.annotating import AnnotationEditor
from fashionviewer.core.viewer.annotation_drawing import InstanceDrawing
from fashionviewer.core.viewer.annotation_tools import MIN_RADIUS, Tool
from fashionviewer.core.viewer.session import Signal, ViewerSession


@dataclass
class AnnotationStateEvents:
    active_changed: Signal = field(default_factory=Signal)  # (on)
    # (editor | None) the folder's editor opened / dropped
    editor_changed: Signal = field(default_factory=Signal)
    # (file_name) after the selection was checked
    annotations_changed: Signal = field(default_factory=Signal)
    selection_changed: Signal = field(default_factory=Signal)  # (annotation id | None)
    tool_changed: Signal = field(default_factory=Signal)  # (Tool)
    radius_changed: Signal = field(default_factory=Signal)  # (radius)
    # (text, milliseconds) a line for the status bar
    message: Signal = field(default_factory=Signal)
    # (message) something failed (a save, a segmentation)
    error: Signal = field(default_factory=Signal)


class AnnotationState(InstanceDrawing):
    """What the user is doing while annotating one folder (see the module docstring).

    ``image_size``: the current image's (width, height), None while it loads; ``model_classes`` and
    ``model_label``: the loaded model's class names and its name for provenance (None: none loaded)."""

    def __init__(
        self,
        session: ViewerSession,
        image_size: Callable[[], tuple[int, int] | None],
        model_classes: Callable[[], Sequence[str]] = list,
        model_label: Callable[[], str | None] = lambda: None,
        autosave_delay: float = 0.5,
    ) -> None:
        self.session = session
        self.image_size = image_size
        self.model_classes = model_classes
        self.model_label = model_label
        self.autosave_delay = autosave_delay
        self.events = AnnotationStateEvents()
        self.editor: AnnotationEditor | None = None
        self.active = False
        self.tool = Tool.SELECT
        self.radius = 8.0
        self.selected: int | None = None  # annotation id
        self.reset_drawing()
        ev = session.events
        ev.folder_changed.connect(self._folder_changed)
        ev.current_changed.connect(lambda _path: self._image_changed())
        ev.selection_changed.connect(self._prediction_selected)
        ev.prediction_added.connect(self._hide_accepted)

    # ----- mode, tool, brush -------------------------------------------------------------------
    def set_active(self, on: bool) -> None:
        if on == self.active:
            return
        self.active = on
        if on:
            editor = self.ensure_editor()
            # another program's file at the project path: shown, never edited
            if editor is not None and editor.read_only:
                self.notify(editor.problems[0], 30000)
        else:  # back to viewing: the select tool, nothing being drawn
            self.tool, self.refine = Tool.SELECT, None
            self.events.tool_changed.emit(Tool.SELECT)
        if on and not self.session.layers["annotations"]:
            self.session.set_layer("annotations", True)
        self.events.active_changed.emit(on)

    def set_tool(self, tool: Tool | str) -> None:
        """Choose a tool; choosing Select again clears both selections (Escape twice)."""
        tool = Tool(tool)
        if tool is not Tool.SELECT and self.refuses_edit():
            return
        if tool is Tool.SELECT and self.tool is Tool.SELECT:
            self.select(None)
            self.session.select(None)
        if tool not in (Tool.BOX, Tool.CLICK) or (
            self.refine is not None and (self.refine.box is None) != (tool is Tool.CLICK)
        ):
            # another tool, or the other tool's instance: clicks no longer refine it
            self.refine = None
        self.tool = tool
        self.events.tool_changed.emit(tool)

    def set_radius(self, radius: float) -> None:
        radius = max(MIN_RADIUS, float(radius))
        if radius != self.radius:
            self.radius = radius
            self.events.radius_changed.emit(radius)

    def resize_brush(self, larger: bool) -> None:
        """One step of ] (larger) or [ (smaller): about 25 %, at least one pixel."""
        r = int(round(self.radius))
        self.set_radius(max(r + 1, round(r * 1.25)) if larger else max(1, round(r / 1.25)))

    def notify(self, text: str, milliseconds: int = 5000) -> None:
        self.events.message.emit(text, milliseconds)

    def fail(self, message: str) -> None:
        self.events.error.emit(message)

    @property
    def read_only(self) -> bool:
        """The folder's project file is another program's: shown, never written over."""
        return self.editor is not None and self.editor.read_only

    def refuses_edit(self) -> bool:
        """True (after one line on ``error``) when the file is read-only: the caller then edits nothing."""
        if self.read_only:
            self.fail(self.editor.problems[0])  # type: ignore[union-attr]
            return True
        return False

    # ----- the folder's editor -----------------------------------------------------------------
    def ensure_editor(self) -> AnnotationEditor | None:
        """The open folder's editor, created on first use (None without a folder)."""
        folder = self.session.folder
        if self.editor is not None or folder is None:
            return self.editor
        editor = AnnotationEditor(
            folder, classes=list(self.model_classes()) or None, autosave_delay=self.autosave_delay
        )
        editor.events.changed.connect(self._annotations_changed)
        self.editor = editor
        if editor.read_only and self.tool is not Tool.SELECT:  # a drawing tool would edit it
            self.tool, self.refine = Tool.SELECT, None
            self.events.tool_changed.emit(Tool.SELECT)
        self.events.editor_changed.emit(editor)
        return editor

    def flush(self) -> None:
        """Write unsaved edits now (the window closes, the folder changes); a failure is reported, not raised."""
        if self.editor is None:
            return
        try:
            self.editor.flush()
        except FashionViewerError as exc:
            self.fail(str(exc))

    def save(self) -> Path | None:
        if self.ensure_editor() is None or self.refuses_edit():
            return None
        try:
            path = self.editor.save()  # type: ignore[union-attr]
        except FashionViewerError as exc:
            self.fail(str(exc))
            return None
        self.notify(f"Annotations saved: {path}")
        return path

    def seed_categories(self) -> None:
        """A file without categories yet takes the loaded model's (with the model's own category ids)."""
        editor = self.editor
        if (
            editor is not None
            and not editor.aset.categories
            and not editor.dirty
            and not editor.read_only
        ):
            self.editor.aset.categories = categories_for(list(self.model_classes()))

    def class_names(self) -> list[str]:
        """The file's classes, then the model's others: what the class picker offers."""
        names = list(self.editor.class_names) if self.editor is not None else []
        return names + [n for n in self.model_classes() if n not in names]

    def colour_label(self, name: str, category_id: int) -> int:
        """The colour index predictions of this class use, so an accepted instance keeps its colour."""
        return int(self.session.known_classes.get(name, category_id if category_id > 0 else 1))

    def _folder_changed(self) -> None:
        if self.editor is not None:
            self.flush()
        self.editor, self.selected = None, None
        self.reset_drawing()
        self.events.editor_changed.emit(None)
        folder = self.session.folder
        if folder is not None and (self.active or (folder / DEFAULT_FILE_NAME).is_file()):
            self.ensure_editor()

    # ----- the current image -------------------------------------------------------------------
    def file_name(self, path: Path | None = None) -> str | None:
        """The image's name in the annotation file (relative to the folder, posix)."""
        path = self.session.current if path is None else path
        if path is None or self.session.folder is None:
            return None
        try:
            return Path(path).relative_to(self.session.folder).as_posix()
        except ValueError:
            return Path(path).name

    def annotations(self) -> list[Annotation]:
        name = self.file_name()
        return self.editor.annotations(name) if self.editor is not None and name else []

    def mark(self, path: Path) -> str:
        """The browser's mark: ✓ done, ✎ annotated, nothing otherwise."""
        if self.editor is None:
            return ""
        rec = self.editor.image(self.file_name(path) or "")
        if rec is None:
            return ""
        return "✓ " if rec.done else ("✎ " if rec.annotations else "")

    def is_done(self) -> bool:
        rec = self.editor.image(self.file_name() or "") if self.editor is not None else None
        return rec is not None and rec.done

    def _image_changed(self) -> None:
        self.selected = None
        self.reset_drawing()

    def _annotations_changed(self, file_name: str) -> None:
        if (
            file_name == self.file_name()
            and self.selected is not None
            and self.selected not in {a.id for a in self.annotations()}
        ):
            self.selected = None  # undone or deleted
        self.events.annotations_changed.emit(file_name)

    # ----- selection ---------------------------------------------------------------------------
    def select(self, annotation_id: int | None) -> None:
        """Select an annotation (None: none); an annotation and a prediction are never selected together."""
        self.selected = annotation_id
        if annotation_id is not None and self.session.selected is not None:
            self.session.select(None)
        self.events.selection_changed.emit(annotation_id)

    def _prediction_selected(self, index: int | None) -> None:
        if index is not None and self.selected is not None:
            self.selected = None
            self.events.selection_changed.emit(None)

    def step(self, step: int) -> None:
        """Tab / Shift+Tab: the next or previous instance, annotations first, then the predictions shown."""
        items = [("ann", a.id) for a in self.annotations()] + [
            ("pred", i) for i in self.session.visible_indices()
        ]
        if not items:
            return
        current = (
            ("ann", self.selected) if self.selected is not None else ("pred", self.session.selected)
        )
        k = items.index(current) if current in items else (-1 if step > 0 else 0)
        kind, value = items[(k + step) % len(items)]
        if kind == "ann":
            self.select(value)
        else:
            self.select(None)
            self.session.select(value)

    # ----- predictions -> annotations ----------------------------------------------------------
    def _model_name(self) -> str:
        label = self.model_label()
        return label if label is not None else self.session.model_key

    def _drop_predictions(self, indices: Sequence[int]) -> None:
        """Take accepted or rejected predictions off the current image's prediction layer (this session only)."""
        s = self.session
        prediction = s.prediction()
        if prediction is None or s.current is None:
            return
        gone = set(indices)
        s.select(None)
        kept = [inst for i, inst in enumerate(prediction.instances) if i not in gone]
        s.add_prediction(s.current, replace(prediction, instances=kept), s.model_key)

    def _hide_accepted(self, path: Path, model: str) -> None:
        """A prediction already accepted (unchanged) is not shown again beside its annotation (e.g. reopened)."""
        name = self.file_name(path)
        if self.editor is None or name is None or model != self.session.model_key:
            return
        names = self.editor.aset.category_name
        accepted = {
            (str(a.rle.get("counts")), names(a.category_id))
            for a in self.editor.annotations(name)
            if a.source == "predicted"
        }
        prediction = self.session.prediction(path)
        if not accepted or prediction is None:
            return
        kept = [
            inst
            for inst in prediction.instances
            if inst.rle is None or (str(inst.rle.get("counts")), inst.class_name) not in accepted
        ]
        if len(kept) < len(prediction.instances):
            if path == self.session.current:
                self.session.select(None)
            self.session.add_prediction(path, replace(prediction, instances=kept), model)

    def accept_selected(self) -> int | None:
        """Enter: the selected prediction becomes an annotation (and is selected); returns its id."""
        instance, index = self.session.selected_instance(), self.session.selected
        if self.refuses_edit():
            return None
        if instance is None or index is None or self.ensure_editor() is None:
            self.notify("Select a prediction first (click it, or Tab).")
            return None
        p = self.session.prediction()
        new = self.editor.accept_prediction(
            self.file_name(),
            p.width,
            p.height,
            instance,  # type: ignore[union-attr]
            self._model_name(),
        )
        self._drop_predictions([index])
        self.select(new)
        return new

    def accept_all(self) -> list[int]:
        """Shift+Enter: every prediction shown (above the threshold, classes not hidden), as one undo step."""
        s = self.session
        p, indices = s.prediction(), s.visible_indices()
        if self.refuses_edit():
            return []
        if p is None or not indices or self.ensure_editor() is None:
            return []
        ids = self.editor.accept_predictions(
            self.file_name(),
            p.width,
            p.height,  # type: ignore[union-attr]
            [p.instances[i] for i in indices],
            self._model_name(),
        )
        self._drop_predictions(indices)
        self.notify(f"Accepted {len(ids)} predictions.")
        return ids

    def delete_selected(self) -> None:
        """Delete: the selected annotation, else reject the selected prediction (it leaves the layer)."""
        if self.refuses_edit():
            return
        if self.selected is not None and self.editor is not None:
            self.editor.delete(self.file_name(), self.selected)
            self.select(None)
        elif self.session.selected is not None:
            self._drop_predictions([self.session.selected])

    def selected_class(self) -> str | None:
        if self.selected is None or self.editor is None:
            return None
        return self.editor.aset.category_name(
            self.editor.annotation(self.file_name(), self.selected).category_id
        )

    def relabel_selected(self, class_name: str) -> None:
        if self.refuses_edit():
            return
        if self.selected is not None and self.editor is not None:
            self.editor.relabel(self.file_name(), self.selected, class_name)

    def toggle_done(self) -> None:
        name, size = self.file_name(), self.image_size()
        if self.refuses_edit():
            return
        if name is None or size is None or self.ensure_editor() is None:
            return
        self.editor.set_done(name, not self.is_done(), size[0], size[1])  # type: ignore[union-attr]

    def undo(self) -> None:
        if self.refuses_edit():
            return
        if self.editor is not None and not self.editor.undo():
            self.notify("Nothing to undo.", 3000)

    def redo(self) -> None:
        if self.refuses_edit():
            return
        if self.editor is not None and not self.editor.redo():
            self.notify("Nothing to redo.", 3000)

    def add_drawn(
        self, mask: np.ndarray, class_name: str, origin: dict | None = None
    ) -> int | None:
        """A drawn instance (box, brush, polygon) of ``class_name``; it becomes the selection."""
        size = self.image_size()
        if self.refuses_edit():
            return None
        if size is None or not mask.any() or self.ensure_editor() is None:
            return None
        new = self.editor.add(
            self.file_name(),
            size[0],
            size[1],
            mask,
            class_name,  # type: ignore[union-attr]
            "drawn",
            origin,
        )
        self.select(new)
        return new


__all__ = ["AnnotationState", "AnnotationStateEvents"]
