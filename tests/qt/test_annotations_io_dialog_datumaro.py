"""Annotate ▸ Import / Export Annotations lists Datumaro's formats only where Datumaro imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fashionviewer.qt.dialogs.annotations_io import AnnotationsIODialog


def _formats(dialog: AnnotationsIODialog) -> list[str]:
    return [dialog.fmt.itemData(i) for i in range(dialog.fmt.count())]


@pytest.mark.parametrize("export", [True, False])
def test_no_datumaro_formats_without_datumaro(qtbot, tmp_path, monkeypatch, export):
    monkeypatch.setitem(sys.modules, "datumaro", None)  # `import datumaro` raises ImportError
    dialog = AnnotationsIODialog(export, tmp_path)
    qtbot.addWidget(dialog)
    names = _formats(dialog)
    assert "coco" in names and "voc" in names
    assert not [n for n in names if str(n).startswith("datumaro:")]


@pytest.mark.parametrize("export", [True, False])
def test_datumaro_formats_listed_with_datumaro(qtbot, tmp_path, export):
    pytest.importorskip("datumaro")
    dialog = AnnotationsIODialog(export, tmp_path)
    qtbot.addWidget(dialog)
    names = _formats(dialog)
    assert "datumaro:cityscapes" in names and "coco" in names
    # ADE20K is read, not written, by Datumaro
    assert ("datumaro:ade20k2020" in names) is (not export)
    index = names.index("datumaro:cityscapes")
    assert dialog.fmt.itemText(index) == "Datumaro: cityscapes"


def test_the_package_does_not_import_datumaro():
    code = (
        "import sys, fashionviewer.annotations_cli, fashionviewer.core.data.formats; "
        "print('datumaro' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
