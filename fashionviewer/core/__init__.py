"""Pure-Python core of FashionViewer (numpy/torch only; never imports Qt)."""
