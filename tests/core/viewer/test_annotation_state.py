"""Annotation interaction state without a display: the tool list, brush rasterisation, and on a real CCP photo
(its pixel-level ground truth standing in as predictions) accept / accept-all / reject, strokes, click
refinement, undo steps, the file written and read back, and the accepted predictions hidden on reopening."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat

from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.masks import decode_mask, encode_mask
from fashionviewer.core.data.predictions import ImagePrediction, Instance
from fashionviewer.core.inference.interactive import segment
from fashionviewer.core.viewer.annotation_state import AnnotationState
from fashionviewer.core.viewer.annotation_tools import (
    TOGGLE_KEY,
    Tool,
    shortcut_rows,
    stamp_segment,
)
from fashionviewer.core.viewer.session import ViewerSession

README = Path(__file__).resolve().parents[3] / "README.md"
MODEL = "ccp ground truth"


# ----- the tool list and the brush, no data needed ---------------------------------------------------------
def test_tool_enum_is_the_one_ordered_list_and_matches_the_readme_keys() -> None:
    # menu and toolbar order
    assert [t.value for t in Tool] == ["select", "box", "click", "polygon", "brush", "eraser"]
    assert (
        Tool("box") is Tool.BOX and Tool.BOX == "box" and Tool.ERASER.paints and not Tool.BOX.paints
    )
    keys = [k for t in Tool for k in t.keys]
    assert len(keys) == len(set(keys))
    with pytest.raises(ValueError):
        Tool("lasso")
    table = (
        README.read_text(encoding="utf-8").split("Annotation mode keys", 1)[1].split("\n\n", 2)[1]
    )
    documented = {
        k.strip()
        for row in re.findall(r"^\| ([^|]+) \|", table, flags=re.M)
        for k in re.split(r"[/,()]", row)
    }
    assert {t.keys[0] for t in Tool if t is not Tool.SELECT} <= documented and "Esc" in documented
    rows = shortcut_rows([("Undo", ("Ctrl+Z",))])
    assert rows[0] == ("Annotation mode", TOGGLE_KEY) and rows[-1] == ("Undo", "Ctrl+Z")
    assert [text for text, _k in rows[1:-1]] == [t.text for t in Tool]


def _capsule(
    shape: tuple[int, int], a: tuple[float, float], b: tuple[float, float], r: float
) -> np.ndarray:
    """Pixels within r of the segment a-b, by brute force over 4001 points along it (independent of the code)."""
    out = np.zeros(shape, bool)
    x0, y0 = max(0, int(min(a[0], b[0]) - r - 2)), max(0, int(min(a[1], b[1]) - r - 2))
    x1, y1 = (
        min(shape[1], int(max(a[0], b[0]) + r + 3)),
        min(shape[0], int(max(a[1], b[1]) + r + 3)),
    )
    ys, xs = np.mgrid[y0:y1, x0:x1]
    best = np.full(ys.shape, np.inf)
    for t in np.linspace(0.0, 1.0, 4001):
        px, py = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
        best = np.minimum(best, (xs - px) ** 2 + (ys - py) ** 2)
    out[y0:y1, x0:x1] = np.sqrt(best) <= r + 1e-9
    return out


def test_stamp_segment_paints_a_round_capped_line_and_reports_its_square() -> None:
    mask = np.zeros((60, 80), np.uint8)
    square = stamp_segment(mask, (10, 20), (50, 35), 4, 1)
    expected = _capsule(mask.shape, (10, 20), (50, 35), 4)
    assert np.array_equal(mask.astype(bool), expected)
    x0, y0, x1, y1 = square
    ys, xs = np.nonzero(mask)
    assert x0 <= xs.min() and xs.max() < x1 and y0 <= ys.min() and ys.max() < y1
    disc = np.zeros((40, 40), np.uint8)
    stamp_segment(disc, (20, 20), (20, 20), 5, 1)  # one dab: a disc
    assert disc.sum() == int(_capsule(disc.shape, (20, 20), (20, 20), 5).sum()) == 81
    before = mask.copy()
    stamp_segment(mask, (30, 28), (30, 28), 3, 0)  # the eraser clears a disc, nothing else
    hole = _capsule(mask.shape, (30, 28), (30, 28), 3)
    assert (
        before[hole].all() and not mask[hole].any() and np.array_equal(mask[~hole], before[~hole])
    )
    # off the image: nothing, no error
    assert stamp_segment(mask, (-50, -50), (-40, -40), 3, 1) is None
    edge = np.zeros((10, 10), np.uint8)
    assert (
        stamp_segment(edge, (0, 0), (0, 0), 2, 1) == (0, 0, 3, 3) and edge[0, 2] and not edge[2, 2]
    )


# ----- a real CCP photo ------------------------------------------------------------------------------------
def _ground_truth_prediction(ccp_root: Path, stem: str) -> ImagePrediction:
    """One instance per labelled class of the photo (skin and hair left out), scored by its area rank."""
    gt = loadmat(ccp_root / "annotations" / "pixel-level" / f"{stem}.mat")["groundtruth"]
    names = [str(n[0]) for n in loadmat(ccp_root / "label_list.mat")["label_list"][0]]
    values = [v for v in np.unique(gt) if v and names[v] not in ("skin", "hair")]
    values.sort(key=lambda v: -int((gt == v).sum()))
    instances = []
    for rank, v in enumerate(values):
        mask = gt == v
        ys, xs = np.nonzero(mask)
        instances.append(
            Instance(
                (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)),
                int(v),
                names[v],
                round(0.95 - 0.1 * rank, 2),
                encode_mask(mask),
            )
        )
    return ImagePrediction(f"{stem}.jpg", gt.shape[1], gt.shape[0], instances, model=MODEL)


class _Recorder:
    def __init__(self, state: AnnotationState) -> None:
        self.messages: list[str] = []
        self.selections: list[int | None] = []
        self.tools: list[Tool] = []
        state.events.message.connect(lambda text, _ms: self.messages.append(text))
        state.events.selection_changed.connect(self.selections.append)
        state.events.tool_changed.connect(self.tools.append)


@pytest.fixture
def photo(tmp_path: Path, ccp_root: Path) -> tuple[Path, ImagePrediction, np.ndarray]:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(ccp_root / "photos" / "0001.jpg", folder / "0001.jpg")
    image = np.asarray(Image.open(folder / "0001.jpg").convert("RGB"))
    return folder, _ground_truth_prediction(ccp_root, "0001"), image


def _open(
    folder: Path, prediction: ImagePrediction, image: np.ndarray
) -> tuple[ViewerSession, AnnotationState]:
    session = ViewerSession()
    state = AnnotationState(
        session,
        lambda: (image.shape[1], image.shape[0]),
        model_classes=lambda: [i.class_name for i in prediction.instances],
        model_label=lambda: MODEL,
        autosave_delay=-1,
    )
    session.open_folder(folder)
    session.set_model_key(MODEL)
    session.add_prediction(folder / "0001.jpg", prediction, MODEL)
    return session, state


def test_accept_reject_undo_and_the_file_read_back(photo) -> None:
    folder, prediction, image = photo
    session, state = _open(folder, prediction, image)
    seen = _Recorder(state)
    n = len(prediction.instances)
    assert n >= 4 and state.editor is None  # no annotation file yet, mode off: nothing opened
    state.set_active(True)
    assert state.editor is not None and session.layers["annotations"]
    # seeded from the model
    assert state.editor.class_names == [i.class_name for i in prediction.instances]

    assert state.accept_selected() is None and seen.messages[-1].startswith(
        "Select a prediction first"
    )
    state.step(1)  # Tab: the first prediction shown
    assert session.selected == 0
    first = session.selected_instance()
    new = state.accept_selected()
    ann = state.annotations()[0]
    assert ann.id == new == state.selected and seen.selections[-1] == new
    assert ann.source == "predicted" and ann.origin == {"model": MODEL, "score": first.score}
    assert np.array_equal(ann.mask(), decode_mask(first.rle).astype(bool))
    assert (
        len(session.prediction().instances) == n - 1 and first not in session.prediction().instances
    )

    session.select(0)  # selecting a prediction drops the annotation's selection
    assert state.selected is None and seen.selections[-1] is None
    rejected = session.selected_instance()
    state.delete_selected()  # Delete on a prediction rejects it: off the layer, not annotated
    assert rejected not in session.prediction().instances and len(state.annotations()) == 1

    session.set_threshold(0.6)
    shown = [session.prediction().instances[i] for i in session.visible_indices()]
    assert 0 < len(shown) < n - 2  # the threshold leaves some out
    ids = state.accept_all()
    assert len(ids) == len(shown) and seen.messages[-1] == f"Accepted {len(shown)} predictions."
    assert session.visible_indices() == [] and len(state.annotations()) == 1 + len(shown)
    state.undo()  # accept-all was one undo step
    assert [a.id for a in state.annotations()] == [new]
    state.redo()
    assert [a.id for a in state.annotations()] == [new, *ids]

    state.select(ids[0])
    state.relabel_selected("obi sash")
    assert state.selected_class() == "obi sash" and state.annotations()[1].source == "edited"
    state.delete_selected()
    assert ids[0] not in [a.id for a in state.annotations()] and state.selected is None
    state.toggle_done()
    assert state.is_done() and state.mark(folder / "0001.jpg") == "✓ "

    path = state.save()
    assert path == folder / DEFAULT_FILE_NAME and seen.messages[-1] == f"Annotations saved: {path}"
    aset, problems = load_annotations(path)
    rec = aset.images["0001.jpg"]
    assert (
        problems == [] and rec.done and (rec.width, rec.height) == (image.shape[1], image.shape[0])
    )
    assert [a.rle["counts"] for a in rec.annotations] == [
        a.rle["counts"] for a in state.annotations()
    ]
    assert "obi sash" in [c["name"] for c in aset.categories]

    # Reopened: the predictions accepted unchanged are not offered again beside their annotations.
    again_session, again = _open(folder, prediction, image)
    assert again.editor is not None and len(again.annotations()) == len(state.annotations())
    offered = {i.class_name for i in again_session.prediction().instances}
    accepted_unchanged = {
        aset.category_name(a.category_id) for a in rec.annotations if a.source == "predicted"
    }
    assert accepted_unchanged and not offered & accepted_unchanged
    assert len(again_session.prediction().instances) == n - len(accepted_unchanged)


def test_brush_and_eraser_strokes_are_one_edit_each(photo) -> None:
    folder, prediction, image = photo
    session, state = _open(folder, prediction, image)
    seen = _Recorder(state)
    state.set_active(True)
    state.set_tool(Tool.ERASER)
    assert state.begin_stroke(100, 100, "bag") is None and seen.messages[-1].startswith(
        "Select the annotation"
    )
    state.set_tool("brush")
    assert seen.tools[-2:] == [Tool.ERASER, Tool.BRUSH]
    state.resize_brush(larger=True)
    assert state.radius == 10
    stroke = state.begin_stroke(100, 200, "bag")  # nothing selected: a new instance
    for x, y in ((100, 200), (130, 210), (160, 230)):
        state.extend_stroke(x, y)
    state.end_stroke()
    painted = state.annotations()[0]
    expected = np.zeros(image.shape[:2], bool)
    for a, b in (((100, 200), (100, 200)), ((100, 200), (130, 210)), ((130, 210), (160, 230))):
        expected |= _capsule(expected.shape, a, b, 10)
    assert stroke.target is None and painted.source == "drawn" and state.selected == painted.id
    assert (
        np.array_equal(painted.mask(), expected)
        and state.editor.aset.category_name(painted.category_id) == "bag"
    )

    state.set_tool(Tool.ERASER)  # erase the middle of it: one edit, undone in one step
    state.begin_stroke(130, 190, "ignored")
    state.extend_stroke(130, 190)
    state.extend_stroke(130, 230)
    state.end_stroke()
    erased = state.annotations()[0].mask()
    assert not erased[210, 130] and erased[200, 100] and erased.sum() < expected.sum()
    state.undo()
    assert np.array_equal(state.annotations()[0].mask(), expected)
    state.begin_stroke(130, 210, "ignored")  # erased away entirely: the annotation goes
    for _ in range(3):
        state.resize_brush(larger=True)
    state.extend_stroke(100, 200)
    state.extend_stroke(160, 230)
    state.end_stroke()
    assert state.annotations() == [] and state.selected is None


def test_box_then_clicks_refine_one_instance(photo) -> None:
    folder, prediction, image = photo
    session, state = _open(folder, prediction, image)
    state.set_active(True)
    state.set_tool(Tool.BOX)
    box = prediction.instances[0].box  # the largest garment's box
    refine = state.begin_box(box)
    assert refine.target is None and refine.clicks == []
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    # the box's result will take the click
    assert state.add_click(cx, cy, True, box_pending=True) is refine
    mask = segment(
        image,
        box=refine.box,
        positive=refine.points(True),
        negative=refine.points(False),
        session=state.interactive,
    )
    new = state.apply_segment("0001.jpg", refine.box, None, mask, "dress")
    ann = state.editor.annotation("0001.jpg", new)
    assert (
        ann.source == "drawn"
        and ann.origin == {"box": [round(v, 1) for v in box]}
        and state.selected == new
    )
    assert state.refine.target == new and state.refine.points(True) == [(cx, cy)]

    corner = (box[0] + 2, box[1] + 2)
    # a right click on the drawn instance: same refinement, one more
    again = state.add_click(*corner, False)
    assert again is state.refine and again.points(False) == [corner]
    smaller = mask.copy()
    smaller[: int(cy)] = False
    assert state.apply_segment("0001.jpg", again.box, new, smaller, "dress") == new
    assert np.array_equal(state.editor.annotation("0001.jpg", new).mask(), smaller)
    # the user moved on
    assert state.apply_segment("other.jpg", again.box, new, mask, "dress") is None
    assert state.apply_segment("0001.jpg", again.box, None, np.zeros_like(mask), "dress") is None

    state.select(None)
    # nothing drawn or selected: the click applies to nothing
    assert state.add_click(cx, cy, True) is None
    state.set_tool(Tool.SELECT)
    assert state.refine is None
    state.select(new)
    state.set_tool(Tool.SELECT)  # Escape on the select tool clears the selection
    assert state.selected is None


def test_changing_folder_saves_unsaved_edits_and_resets(photo, tmp_path: Path) -> None:
    folder, prediction, image = photo
    session, state = _open(folder, prediction, image)
    editors: list = []
    state.events.editor_changed.connect(editors.append)
    state.set_active(True)
    state.step(1)
    state.accept_selected()
    assert state.editor.dirty and not (folder / DEFAULT_FILE_NAME).exists()  # autosave is off here
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(image[:64, :64]).save(other / "a.png")
    session.open_folder(other)
    assert (folder / DEFAULT_FILE_NAME).is_file()  # flushed on the way out
    # mode on: a new editor
    assert editors[0] is not None and editors[1] is None and editors[2].folder == other
    assert state.selected is None and state.annotations() == []
    state.set_active(False)
    assert state.tool is Tool.SELECT and not state.active
