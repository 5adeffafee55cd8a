"""Shared fixtures: the real Fashion-MNIST (Debian) and Clothing Co-Parsing photos."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from fashionviewer.core.errors import DataError
from fashionviewer.core.paths import ccp_dir


@pytest.fixture(scope="session")
def fmnist():
    from fashionviewer.core.fmnist import load_fashion_mnist

    try:
        return load_fashion_mnist()
    except DataError as exc:
        pytest.skip(f"real Fashion-MNIST not installed ({exc})")


@pytest.fixture(scope="session")
def ccp_root():
    root = ccp_dir()
    if root is None:
        pytest.skip("Clothing Co-Parsing photos not found at ../shared/data/ccp (set FASHIONVIEWER_SHARED_DATA)")
    return root
