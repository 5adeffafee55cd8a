"""Static checks that run with the test suite: the import contracts (pyproject.toml) and ruff."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    if shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    result = _run("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and result.stdout.count("KEPT") >= 3


def test_ruff_finds_nothing():
    result = _run(sys.executable, "-m", "ruff", "check", ".")
    if "No module named ruff" in result.stderr:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    assert result.returncode == 0, result.stdout[-4000:]


def test_a_layer_violation_is_caught(tmp_path):
    """The layers contract really bites: a copy of the package whose data layer imports the viewer fails it."""
    if shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed")
    shutil.copytree(
        ROOT / "fashionviewer",
        tmp_path / "fashionviewer",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copytree(
        ROOT / "trainers", tmp_path / "trainers", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    masks = tmp_path / "fashionviewer/core/data/masks.py"
    masks.write_text(
        masks.read_text() + "\nfrom fashionviewer.core.viewer import session  # noqa: E402,F401\n"
    )
    result = subprocess.run(
        ["lint-imports", "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
    )
    assert (
        result.returncode != 0
        and "fashionviewer.core.data.masks -> fashionviewer.core.viewer" in result.stdout
    )


def test_code_is_ruff_formatted():
    """`ruff format` (line length 100, pyproject.toml) leaves every file as it is."""
    result = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    if "No module named ruff" in result.stderr:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_modules_stay_small():
    """No module of the package over 500 lines, the main window under 400 (labelme's grew to ~3,000)."""
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in (ROOT / "fashionviewer").rglob("*.py")
    }
    assert len(sizes) > 50
    too_long = {name: n for name, n in sizes.items() if n > 500}
    assert not too_long, f"split these modules: {too_long}"
    assert sizes["fashionviewer/qt/main_window.py"] < 400
