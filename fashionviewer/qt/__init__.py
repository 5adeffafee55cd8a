"""The desktop viewer (PySide6 + pyqtgraph): the only package that imports Qt."""
