"""The core never imports Qt: it must work in a process where PySide6 cannot be imported."""

import subprocess
import sys
import textwrap

BLOCK_QT = textwrap.dedent("""
    import importlib.abc, sys
    class BlockQt(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph', 'PyQt5', 'PyQt6'):
                raise ImportError('Qt is blocked: ' + name)
    sys.meta_path.insert(0, BlockQt())
""")


def test_core_trainers_and_cli_modules_import_without_qt():
    code = BLOCK_QT + textwrap.dedent("""
        import importlib, pkgutil
        import fashionviewer.core, trainers
        names = ['fashionviewer.core.models.classifier', 'fashionviewer.__main__']
        for pkg in (fashionviewer.core, trainers):
            names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.')]
        for optional in ('fashionviewer.predict', 'fashionviewer.evaluate'):
            if importlib.util.find_spec(optional):
                names.append(optional)
        for name in names:
            importlib.import_module(name)
        assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))]
        print(len(names))
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 8
