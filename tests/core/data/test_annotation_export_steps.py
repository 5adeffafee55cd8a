"""Export with progress and cancel (``formats.export_steps``): one step per image, and a cancelled export
(the generator closed, as the viewer's worker does on Cancel, or Ctrl+C in the command line) leaves no file
in the output folder and no staging folder beside it; a complete one reads back. Generated images: this is
about the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionviewer.__main__ import main as cli
from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.formats import FORMATS, export_steps, read_format
from fashionviewer.core.viewer.annotating import AnnotationEditor

IMAGES = 6
W, H = 96, 64


@pytest.fixture
def project(tmp_path) -> Path:
    """Six generated photos, each with two annotated rectangles (iMaterialist ids, so every format writes)."""
    from fashionviewer.core.data.taxonomy import imaterialist_names

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = imaterialist_names()
    editor = AnnotationEditor(folder, classes=names, autosave_delay=-1)
    for i in range(IMAGES):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        for k, (cls, x) in enumerate(((names[1], 5), (names[6], 50))):
            mask = np.zeros((H, W), bool)
            mask[10 + i : 40 + i, x : x + 30 + k] = True
            editor.add(f"{i}.png", W, H, mask, cls)
    editor.save()
    return folder


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.mark.parametrize("fmt", FORMATS)
def test_cancelled_export_writes_nothing(project, tmp_path, fmt):
    out = tmp_path / f"out-{fmt}"
    steps = export_steps(project, out, fmt)
    assert [next(steps) for _ in range(3)] == [(0, IMAGES), (1, IMAGES), (2, IMAGES)]
    assert _leftovers(out)  # the staging folder holds what is done so far
    steps.close()  # Cancel
    assert not out.exists() and _leftovers(out) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_complete_export_steps_every_image_and_reads_back(project, tmp_path, fmt):
    out = tmp_path / f"out-{fmt}"
    steps, progress = export_steps(project, out, fmt), []
    while True:
        try:
            progress.append(next(steps))
        except StopIteration as stop:
            written = stop.value
            break
    assert progress == [(i, IMAGES) for i in range(IMAGES)] + [(IMAGES, IMAGES)]
    assert written and all(p.is_file() and out in p.parents for p in written)
    assert _leftovers(out) == []
    back, problems, detected = read_format(out)
    original, _ = load_annotations(project / DEFAULT_FILE_NAME)
    assert detected == fmt and problems == []
    assert sum(len(r.annotations) for r in back.images.values()) == 2 * IMAGES
    for name, rec in original.images.items():
        got = {
            back.category_name(a.category_id): a.mask()
            for a in back.images[Path(name).name if fmt == "imaterialist" else name].annotations
        }
        for ann in rec.annotations:
            want = ann.mask().astype(bool)
            mine = got[original.category_name(ann.category_id)].astype(bool)
            assert (want & mine).sum() / (want | mine).sum() >= 0.95


def test_the_command_line_export_still_works(project, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli(["annotations", "export", str(project), "--to", "yolo", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {2 * IMAGES + 1} file(s) to {out} (yolo)"
    assert len(list((out / "labels").glob("*.txt"))) == IMAGES
