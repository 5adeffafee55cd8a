"""Shared fixtures: the real Fashion-MNIST (Debian) and Clothing Co-Parsing photos."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from fashionviewer.core.base.errors import DataError
from fashionviewer.core.base.paths import ccp_dir


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One torch thread per test process: the suite's subprocesses (trainers, torchrun ranks, predict
    shards) then never oversubscribe the 2 CI cores, where two OpenMP threads per process ran many
    times slower than one."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def fmnist():
    from fashionviewer.core.data.fmnist import load_fashion_mnist

    try:
        return load_fashion_mnist()
    except DataError as exc:
        pytest.skip(f"real Fashion-MNIST not installed ({exc})")


@pytest.fixture(scope="session")
def ccp_root():
    root = ccp_dir()
    if root is None:
        pytest.skip(
            "Clothing Co-Parsing photos not found at ../shared/data/ccp (set FASHIONVIEWER_SHARED_DATA)"
        )
    return root


@pytest.fixture(autouse=True)
def _private_prediction_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own persistent prediction cache: never the user's, never another test's."""
    from fashionviewer.core.runs.cache import close_shared_caches

    monkeypatch.setenv(
        "FASHIONVIEWER_CACHE", str(tmp_path_factory.mktemp("cache") / "predictions.sqlite3")
    )
    yield
    close_shared_caches()
