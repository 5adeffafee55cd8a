"""``datumaro:FORMAT`` (core/data/formats/datumaro_bridge.py): without Datumaro one error line and nothing
written (runs everywhere); with it, real CCP masks exported to Datumaro's formats and imported back
through the bridge (runs where ``pip install 'fashionviewer[datumaro]'`` is done)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from fashionviewer.__main__ import main as cli
from fashionviewer.core.base.errors import DataError
from fashionviewer.core.data.annotation_file import load_annotations
from fashionviewer.core.data.annotations import DEFAULT_FILE_NAME
from fashionviewer.core.data.formats import export_annotations, export_steps, import_annotations
from fashionviewer.core.data.formats.common import mask_to_polygons
from fashionviewer.core.data.formats.datumaro_bridge import NOT_INSTALLED
from tests.core.data.test_annotation_formats import (  # noqa: F401 (fixture)
    assert_same_masks,
    project,
)


def _fresh_folder(source: Path, tmp_path: Path, name: str = "into") -> Path:
    """The project's photos without its project file: where an import goes."""
    target = tmp_path / name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.json*"))
    return target


def test_without_datumaro_one_error_line_and_nothing_written(
    project,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    monkeypatch.setitem(sys.modules, "datumaro", None)  # `import datumaro` raises ImportError
    before = sorted(p.name for p in tmp_path.iterdir())
    code = cli(
        [
            "annotations",
            "export",
            str(project),
            "--to",
            "datumaro:cityscapes",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"error: {NOT_INSTALLED}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out, no staging folder left
    project_file = (project / DEFAULT_FILE_NAME).read_bytes()
    code = cli(
        [
            "annotations",
            "import",
            str(project),
            "--from",
            "datumaro:cityscapes",
            "--into",
            str(project),
        ]
    )
    assert code == 2 and capsys.readouterr().err.strip() == f"error: {NOT_INSTALLED}"
    assert (project / DEFAULT_FILE_NAME).read_bytes() == project_file
    with pytest.raises(DataError, match="Datumaro is not installed"):
        export_annotations(project, tmp_path / "out", "datumaro:voc_segmentation")


def test_help_names_datumaro(capsys):
    assert cli(["annotations", "export", "-h"]) == 0
    out = capsys.readouterr().out
    assert "datumaro:FORMAT" in out and "fashionviewer[datumaro]" in out


def test_unknown_datumaro_format_lists_real_ones(project, tmp_path, capsys):  # noqa: F811
    pytest.importorskip("datumaro")
    code = cli(
        [
            "annotations",
            "export",
            str(project),
            "--to",
            "datumaro:cityscape",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "unknown Datumaro format 'cityscape'" in err[0] and "datumaro:cityscapes" in err[0]
    assert not (tmp_path / "out").exists()


# class-per-pixel PNGs (label 0 the background), VOC's class and object PNGs, Datumaro's own RLE JSON
@pytest.mark.parametrize(
    "fmt", ["cityscapes", "kitti_segmentation", "voc_segmentation", "datumaro"]
)
def test_mask_round_trip_through_datumaro(project, tmp_path, fmt):  # noqa: F811
    pytest.importorskip("datumaro")
    original = load_annotations(project / DEFAULT_FILE_NAME)[0]
    steps = list(_steps(export_steps(project, tmp_path / fmt, f"datumaro:{fmt}")))
    assert steps[-1][0] == steps[-1][1] == len(original.images) + 2  # per image, then 2 stages
    assert any((tmp_path / fmt).rglob("*.*"))
    into = _fresh_folder(project, tmp_path)
    path, images, instances, _problems = import_annotations(tmp_path / fmt, into, f"datumaro:{fmt}")
    back = load_annotations(path)[0]
    assert images == 2
    assert_same_masks(original, back, 0.99)
    assert back.provenance["imported"][-1]["format"] == f"datumaro:{fmt}"
    assert {a.source for r in back.images.values() for a in r.annotations} == {"imported"}


def test_polygon_round_trip_through_datumaro(project, tmp_path):  # noqa: F811
    """Polygons (as another tool's COCO holds them) out to CVAT XML by Datumaro and back."""
    pytest.importorskip("datumaro")
    from pycocotools import mask as mask_utils

    export_annotations(project, tmp_path / "coco", "coco")
    data = json.loads((tmp_path / "coco" / "annotations" / "instances_default.json").read_text())
    for ann in data["annotations"]:
        ann["segmentation"] = mask_to_polygons(mask_utils.decode(ann["segmentation"]))
    (tmp_path / "polygons.json").write_text(json.dumps(data))
    polygon_folder = _fresh_folder(project, tmp_path, "polygons")
    path = import_annotations(tmp_path / "polygons.json", polygon_folder, "coco")[0]
    polygons = load_annotations(path)[0]
    export_annotations(polygon_folder, tmp_path / "cvat", "datumaro:cvat")
    xml = "".join(p.read_text() for p in (tmp_path / "cvat").rglob("*.xml"))
    assert xml.count("<polygon") >= 8 and "<mask" not in xml
    into = _fresh_folder(project, tmp_path)
    path = import_annotations(tmp_path / "cvat", into, "datumaro:cvat")[0]
    assert_same_masks(polygons, load_annotations(path)[0], 0.95)


def _steps(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return


def test_crowd_flag_survives_datumaro(project, tmp_path):  # noqa: F811
    """Datumaro's COCO writer marks every mask iscrowd 1; the bridge keeps each instance's own flag."""
    pytest.importorskip("datumaro")
    from fashionviewer.core.data.annotation_file import save_annotations

    aset = load_annotations(project / DEFAULT_FILE_NAME)[0]
    crowd = aset.images["0001.jpg"].annotations[0]
    crowd.iscrowd = 1
    crowd_class = aset.category_name(crowd.category_id)
    save_annotations(project / DEFAULT_FILE_NAME, aset)
    export_annotations(project, tmp_path / "dm", "datumaro:datumaro")
    into = _fresh_folder(project, tmp_path)
    back = load_annotations(import_annotations(tmp_path / "dm", into, "datumaro:datumaro")[0])[0]
    flags = {
        (name, back.category_name(a.category_id)): a.iscrowd
        for name, rec in back.images.items()
        for a in rec.annotations
    }
    assert flags.pop(("0001.jpg", crowd_class)) == 1
    assert set(flags.values()) == {0} and len(flags) >= 9
