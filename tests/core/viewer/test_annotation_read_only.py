"""Another program's file at the project path, on real CCP photos: a labelme JSON there opens read-only
showing its shapes, every edit is refused with one line and the file stays byte for byte; importing the file
itself converts it (the original kept as .bak) and the folder is writable again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image, ImageDraw

from fashionviewer.core.base.errors import FashionViewerError
from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME, FORMAT
from fashionviewer.core.data.formats import backup_path, import_annotations, keep_backup
from fashionviewer.core.data.formats.common import mask_to_polygons
from fashionviewer.core.viewer.annotating import AnnotationEditor
from fashionviewer.core.viewer.annotation_state import AnnotationState
from fashionviewer.core.viewer.annotation_tools import Tool
from fashionviewer.core.viewer.session import ViewerSession

PHOTO = "0001"
MIN_AREA = (
    400  # px²: polygons smaller than this are left out (a rasteriser's edge pixels dominate them)
)


def _area(points: list[float]) -> float:
    x, y = np.asarray(points[0::2]), np.asarray(points[1::2])
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def labelme_from_ccp(ccp_root: Path, image_name: str) -> tuple[dict, dict[str, list[list[float]]]]:
    """A labelme JSON of the photo's real CCP classes (skin, hair and tiny parts left out): one polygon per
    part, the parts of a class sharing a group_id. Returns the document and each class's polygons."""
    gt = scipy.io.loadmat(ccp_root / "annotations" / "pixel-level" / f"{PHOTO}.mat")["groundtruth"]
    cells = scipy.io.loadmat(ccp_root / "label_list.mat")["label_list"].ravel()
    names = [str(c[0]) if np.size(c) else "" for c in cells]
    polygons: dict[str, list[list[float]]] = {}
    for value in np.unique(gt):
        if value and names[value] not in ("skin", "hair", "null"):
            parts = [p for p in mask_to_polygons(gt == value) if _area(p) >= MIN_AREA]
            if parts:
                polygons[names[value]] = parts
    shapes = [
        {
            "label": name,
            "points": np.asarray(part).reshape(-1, 2).tolist(),
            "group_id": group,
            "description": "",
            "shape_type": "polygon",
            "flags": {},
        }
        for group, (name, parts) in enumerate(polygons.items(), start=1)
        for part in parts
    ]
    doc = {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": int(gt.shape[0]),
        "imageWidth": int(gt.shape[1]),
    }
    return doc, polygons


def polygon_mask_pil(parts: list[list[float]], height: int, width: int) -> np.ndarray:
    """The parts filled by PIL (another rasteriser than the project's pycocotools)."""
    canvas = Image.new("1", (width, height))
    draw = ImageDraw.Draw(canvas)
    for part in parts:
        draw.polygon([tuple(p) for p in np.asarray(part).reshape(-1, 2)], fill=1)
    return np.asarray(canvas, dtype=bool)


@pytest.fixture
def foreign(ccp_root, tmp_path) -> tuple[Path, bytes, dict[str, list[list[float]]]]:
    """A folder of two real CCP photos whose project file is a labelme JSON of the first one."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for stem in (PHOTO, "0002"):
        shutil.copy(ccp_root / "photos" / f"{stem}.jpg", folder / f"{stem}.jpg")
    doc, polygons = labelme_from_ccp(ccp_root, f"{PHOTO}.jpg")
    (folder / DEFAULT_FILE_NAME).write_text(json.dumps(doc, indent=2))
    return folder, (folder / DEFAULT_FILE_NAME).read_bytes(), polygons


def _state(folder: Path) -> tuple[AnnotationState, list[str]]:
    session = ViewerSession()
    session.open_folder(folder)
    size = Image.open(folder / f"{PHOTO}.jpg").size
    state = AnnotationState(session, lambda: size, autosave_delay=0.01)
    errors: list[str] = []
    state.events.error.connect(errors.append)
    return state, errors


def test_labelme_project_file_is_shown_read_only_and_every_edit_refused(foreign, capsys):
    folder, original, polygons = foreign
    path = folder / DEFAULT_FILE_NAME
    state, errors = _state(folder)
    state.set_active(True)
    editor = state.editor
    assert state.active and state.read_only and editor.foreign_format == "labelme"
    line = editor.problems[0]
    assert line.startswith(f"{DEFAULT_FILE_NAME} is a labelme file: shown read-only") and (
        "Import… converts it" in line and f"{DEFAULT_FILE_NAME}.bak" in line
    )
    assert capsys.readouterr().err.strip().splitlines() == [f"warning: {line}"]
    # its shapes are the annotations shown: one instance per class
    shown = state.annotations()
    assert state.file_name() == f"{PHOTO}.jpg" and len(shown) == len(polygons) >= 4
    assert sorted(editor.aset.category_name(a.category_id) for a in shown) == sorted(polygons)
    # selecting and inspecting work
    state.step(1)
    assert state.selected == shown[0].id and state.selected_class() in polygons
    # every edit: refused with that one line, nothing changed
    for tool in (Tool.BOX, Tool.CLICK, Tool.POLYGON, Tool.BRUSH, Tool.ERASER):
        state.set_tool(tool)
        assert state.tool is Tool.SELECT
    mask = np.zeros((shown[0].rle["size"][0], shown[0].rle["size"][1]), bool)
    mask[10:50, 10:50] = True
    edits = (
        state.accept_selected,
        state.accept_all,
        state.delete_selected,
        lambda: state.relabel_selected("dress"),
        state.toggle_done,
        state.undo,
        state.redo,
        state.save,
        lambda: state.add_drawn(mask, "dress"),
    )
    for edit in edits:
        edit()
    assert errors == [line] * (5 + len(edits))
    assert len(state.annotations()) == len(polygons) and state.selected == shown[0].id
    for raw in (
        lambda: editor.add(f"{PHOTO}.jpg", mask.shape[1], mask.shape[0], mask, "dress"),
        lambda: editor.delete(f"{PHOTO}.jpg", shown[0].id),
        lambda: editor.set_done("0002.jpg", True, 10, 10),
        editor.save,
    ):
        with pytest.raises(FashionViewerError) as info:
            raw()
        assert str(info.value) == line
    state.set_active(False)
    state.flush()
    editor.close()
    assert path.read_bytes() == original
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [DEFAULT_FILE_NAME, f"{PHOTO}.jpg", "0002.jpg"]
    )


def test_importing_the_project_file_itself_converts_it_keeping_a_backup(foreign):
    folder, original, polygons = foreign
    path = folder / DEFAULT_FILE_NAME
    assert backup_path(path).name == f"{DEFAULT_FILE_NAME}.bak"
    written, images, instances, problems = import_annotations(path, folder)
    assert (written, images, instances, problems) == (path, 1, len(polygons), [])
    assert (folder / f"{DEFAULT_FILE_NAME}.bak").read_bytes() == original
    aset, problems = load_annotations(path)
    assert problems == [] and aset.written_by == FORMAT
    rec = aset.images[f"{PHOTO}.jpg"]
    assert len(rec.annotations) == len(polygons)
    for ann in rec.annotations:
        name = aset.category_name(ann.category_id)
        expected = polygon_mask_pil(polygons[name], rec.height, rec.width)
        got = ann.mask().astype(bool)
        assert (got & expected).sum() / (got | expected).sum() >= 0.95, name
        assert ann.source == "imported"
    # the editor opens it writable: an edit is saved, the backup stays the original
    editor = AnnotationEditor(folder, autosave_delay=-1)
    assert not editor.read_only and editor.problems == []
    editor.delete(f"{PHOTO}.jpg", rec.annotations[0].id)
    editor.save()
    assert len(load_annotations(path)[0].images[f"{PHOTO}.jpg"].annotations) == len(polygons) - 1
    assert (folder / f"{DEFAULT_FILE_NAME}.bak").read_bytes() == original
    # converting again: it is COCO now, nothing to convert, nothing written
    now = path.read_bytes()
    with pytest.raises(FashionViewerError, match="already a COCO file"):
        import_annotations(path, folder)
    assert path.read_bytes() == now


def test_an_older_backup_with_other_bytes_is_never_replaced(tmp_path):
    path = tmp_path / DEFAULT_FILE_NAME
    path.write_text("new")
    (tmp_path / f"{DEFAULT_FILE_NAME}.bak").write_text("old")
    assert keep_backup(path).name == f"{DEFAULT_FILE_NAME}.bak.2"
    assert (tmp_path / f"{DEFAULT_FILE_NAME}.bak").read_text() == "old"
    assert (tmp_path / f"{DEFAULT_FILE_NAME}.bak.2").read_text() == "new"
    assert keep_backup(path).name == f"{DEFAULT_FILE_NAME}.bak.2"  # the same bytes: the same copy
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [DEFAULT_FILE_NAME, f"{DEFAULT_FILE_NAME}.bak", f"{DEFAULT_FILE_NAME}.bak.2"]
    )


def test_a_file_in_no_known_format_says_what_it_is_and_stays(tmp_path, capsys):
    path = tmp_path / DEFAULT_FILE_NAME
    results = [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9}]
    path.write_text(json.dumps(results))
    before = path.read_bytes()
    editor = AnnotationEditor(tmp_path, autosave_delay=0.01)
    assert editor.read_only and editor.foreign_format is None and editor.aset.images == {}
    assert editor.problems == [
        f"{DEFAULT_FILE_NAME} is a COCO results list, not COCO instances: shown read-only, "
        "nothing is saved over it"
    ]
    assert capsys.readouterr().err == f"warning: {editor.problems[0]}\n"
    with pytest.raises(FashionViewerError, match="results list"):
        editor.set_done("a.png", True, 4, 4)
    editor.close()
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1
